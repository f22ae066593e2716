"""The one place a setting's value is checked against its allowed values or range, for every
layer (data, models, training): each refusal names the key, the value and what was
expected, as a `ConfigError` (one `error:` line at the CLI edge, exit 2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from movierec.errors import ConfigError


def check_choice(key: str, value: Any, allowed: Iterable[str | None]) -> None:
    """Refuse a value outside `allowed`, naming the key and the choices (None: null)."""
    allowed = tuple(allowed)
    if value not in allowed:
        names = ", ".join("null" if name is None else str(name) for name in allowed)
        raise ConfigError(f"{key}={value!r} is not valid; expected one of {names}")


Settings = TypeVar("Settings")


def settings_node(cls: type[Settings], key: str, node: Mapping | None) -> Settings:
    """The dataclass `cls` built from a config `node` keyed by its fields (a key left out
    takes its default; an unknown one is refused, naming `key`)."""
    node = dict(node or {})
    names = [f.name for f in fields(cls)]
    for name in node:
        check_choice(f"{key} key", name, names)
    return cls(**node)


def check_positive(key: str, value: int | float) -> None:
    """Refuse zero/negative sizes with the config key in the message."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{key}={value!r}: expected a positive number")


def check_fraction(key: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key}={value!r}: expected a dropout rate in [0, 1)")


def check_int_at_least(key: str, value: Any, minimum: int, *, none_ok: bool = False) -> None:
    """An integer ≥ `minimum` (or None where `none_ok`)."""
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        also = " or null" if none_ok else ""
        raise ConfigError(f"{key}={value!r}: expected an integer ≥ {minimum}{also}")


def check_at_least(key: str, value: Any, minimum: float) -> None:
    """A number ≥ `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"{key}={value!r}: expected a number ≥ {minimum}")
