"""Turning composed Hydra configs into objects, with user errors kept as user errors; the
project's own config resolvers."""

from __future__ import annotations

import functools
import os
import secrets
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from movierec.errors import ConfigError, MovieRecError

#: the key of a model node that declares what its runs ask of the other config groups
#: (conf/model/lightgcn.yaml's `fit`: batch size, epochs, selection…); those groups read
#: it, the training module is not built from it and the tracker logs it as the keys it sets
RUN_DECLARATION = "fit"


def module_settings(node: DictConfig) -> DictConfig:
    """`cfg.model`, resolved (its interpolations may point elsewhere in the config), less its
    run declaration: what the training module is built from."""
    settings = OmegaConf.to_container(node, resolve=True)
    settings.pop(RUN_DECLARATION, None)
    return OmegaConf.create(settings)


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


@functools.cache
def run_suffix() -> str:
    """`<pid>-<4 random hex digits>`, one per process: with the second it was started in,
    it names the run folder (conf/hydra/default.yaml). The pid keeps processes of one host
    apart, the random part those of several hosts writing to one shared folder."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


def register_resolvers() -> None:
    """`${movierec.run_suffix:}` for the configs (idempotent; Hydra resolves the run
    folder's name after the project's plugin has imported this module)."""
    if not OmegaConf.has_resolver("movierec.run_suffix"):
        OmegaConf.register_new_resolver("movierec.run_suffix", run_suffix)


register_resolvers()
