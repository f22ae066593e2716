"""Hydra sweep syntax → Optuna distributions, checked before any trial runs.

model.lr: tag(log, interval(0.0001, 0.1))   → FloatDistribution(log=True)
model.net.dropout: interval(0.0, 0.5)        → FloatDistribution
model.net.hidden: choice(32, 64, 128)        → CategoricalDistribution
model.net.num_layers: range(1, 4)            → IntDistribution(1, 3)
model.net.hidden: tag(log, range(16, 257, 16)) → IntDistribution(log=True) (step 1)
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from movierec.errors import ConfigError


def parse_search_space(
    params: dict[str, Any], config: DictConfig | None = None
) -> dict[str, BaseDistribution]:
    """Distributions for `hydra.sweeper.params`; `ConfigError` naming any bad entry.

    With `config` (the composed job config) every key must exist in it, unless it starts
    with "+" (Hydra's add-a-key syntax).
    """
    if not params:
        raise ConfigError("hydra.sweeper.params is empty: nothing to search")
    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    for key, value in params.items():
        entry = f"{key}={value}"
        try:
            (override,) = parser.parse_overrides([entry])
        except HydraException as err:
            raise ConfigError(f"search space entry {entry!r} does not parse: {err}") from None
        name = override.get_key_element()
        if config is not None and not name.startswith("+"):
            _check_key_exists(config, name, entry)
        space[name] = to_distribution(override, entry)
    return space


def to_distribution(override: Override, entry: str) -> BaseDistribution:
    value = override.value()
    if not override.is_sweep_override():
        raise ConfigError(
            f"search space entry {entry!r} is a fixed value; use choice(…), interval(…) or "
            "range(…), or put it on the command line"
        )
    log = "log" in getattr(value, "tags", set())
    if isinstance(value, ChoiceSweep):
        choices = [v for v in value.list]
        if not choices:
            raise ConfigError(f"search space entry {entry!r}: choice() is empty")
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if start is None or stop is None or stop <= start:
            raise ConfigError(f"search space entry {entry!r}: range needs start < stop")
        if all(isinstance(v, int) for v in (start, stop, step)):
            if log and step != 1:
                raise ConfigError(f"search space entry {entry!r}: a log range needs step 1")
            return IntDistribution(start, stop - step, log=log, step=1 if log else step)
        return CategoricalDistribution(list(_frange(start, stop, step)))
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if low is None or high is None or low >= high:
            raise ConfigError(f"search space entry {entry!r}: interval needs low < high")
        if log and low <= 0:
            raise ConfigError(f"search space entry {entry!r}: a log interval needs low > 0")
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(float(low), float(high), log=log)
    raise ConfigError(f"search space entry {entry!r}: unsupported sweep {type(value).__name__}")


def _frange(start: float, stop: float, step: float):
    value = start
    while value < stop:
        yield value
        value += step


def _check_key_exists(config: DictConfig, key: str, entry: str) -> None:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(config, parent) if parent else config
    if not isinstance(node, DictConfig) or leaf not in node:
        raise ConfigError(
            f"search space entry {entry!r}: {key} is not a key of the composed config "
            "(check the spelling, or prefix it with + to add a new key)"
        )
