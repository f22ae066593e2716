"""Turning composed Hydra configs into objects, with user errors kept as user errors."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from movierec.errors import ConfigError, MovieRecError


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate(node, **kwargs)`, re-raising user errors unwrapped.

    Hydra wraps any constructor exception in `InstantiationException`; a `MovieRecError`
    inside is surfaced as itself so the CLI prints its one-line message. A missing
    mandatory value (`???`) becomes a `ConfigError` naming `key.<field>`.
    """
    try:
        return instantiate(node, **kwargs)
    except MissingMandatoryValue as err:
        field = getattr(err, "full_key", None) or key
        raise ConfigError(f"{field} must be set (it has no default)") from None
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, MovieRecError):
            raise cause from None
        if isinstance(cause, MissingMandatoryValue):
            field = getattr(cause, "full_key", None) or key
            raise ConfigError(f"{field} must be set (it has no default)") from None
        if isinstance(cause, TypeError):
            raise ConfigError(f"{key}: {cause}") from None
        raise
