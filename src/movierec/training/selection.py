"""`Selection`: the one setting that says which validation metric picks the best epoch.

`selection: {metric: <val/* name>, mode: min|max}` in `conf/train.yaml` is read by the
checkpoint and early-stopping callbacks (by interpolation), the plateau scheduler, the
Optuna pruning callback, the sweep's objective and direction, the run's
`<metric>_best` MLflow metric, the best-config export and `compare_runs`' default sort.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from movierec.errors import ConfigError

MODES = ("min", "max")
DIRECTIONS = {"min": "minimize", "max": "maximize"}


class SelectionError(ConfigError):
    """The `selection` setting does not fit the run (same for every trial of a sweep)."""


@dataclass(frozen=True)
class Selection:
    """Pick the epoch whose `metric` is lowest (`mode="min"`) or highest (`"max"`)."""

    metric: str
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SelectionError(f"selection.mode={self.mode!r}: expected min or max")
        if not isinstance(self.metric, str) or not self.metric.startswith("val/"):
            raise SelectionError(
                f"selection.metric={self.metric!r}: expected a validation metric (val/…), "
                "never a test one"
            )

    @classmethod
    def from_cfg(cls, cfg: Any) -> Selection:
        """The `selection` node of a composed config (`ConfigError` naming a missing key)."""
        node = cfg.get("selection") if hasattr(cfg, "get") else None
        if not node:
            raise SelectionError(
                "selection is not set; expected {metric: val/<name>, mode: min|max}"
            )
        for key in ("metric", "mode"):
            if node.get(key) is None:
                raise SelectionError(f"selection.{key} is not set")
        return cls(metric=node.get("metric"), mode=node.get("mode"))

    # ---------------------------------------------------------------- checks

    def check(self, logged: Iterable[str]) -> None:
        """Refuse a metric the run does not log every epoch (`logged`), naming the key."""
        logged = tuple(logged)
        if self.metric in logged:
            return
        hint = ""
        if "_at_" in self.metric and not any("_at_" in name for name in logged):
            hint = " (validation ranking metrics need ranking.validate=true)"
        elif "_at_" in self.metric:
            hint = " (a ranking metric's K must be one of ranking.k)"
        raise SelectionError(
            f"selection.metric={self.metric!r} is not logged by this run; expected one of "
            f"{', '.join(logged) or 'none (the run logs no validation metric)'}{hint}"
        )

    def check_monitors(self, callbacks: Mapping[str, Any] | None) -> None:
        """Refuse a callback (`callbacks.<name>`) that monitors something else: checkpoints
        and early stopping follow `selection`, there is no second setting."""
        for name, node in (callbacks or {}).items():
            if not node or not hasattr(node, "get"):
                continue
            monitor, mode = node.get("monitor"), node.get("mode")
            if monitor is not None and monitor != self.metric:
                raise SelectionError(
                    f"callbacks.{name}.monitor={monitor!r} differs from "
                    f"selection.metric={self.metric!r}; set selection.metric instead "
                    "(checkpoints, early stopping, the scheduler and sweeps all follow it)"
                )
            if monitor is not None and mode is not None and mode != self.mode:
                raise SelectionError(
                    f"callbacks.{name}.mode={mode!r} differs from selection.mode="
                    f"{self.mode!r}; set selection.mode instead"
                )

    # ---------------------------------------------------------------- comparing

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is strictly better than `b` (NaN is never better; anything beats
        NaN)."""
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a < b if self.mode == "min" else a > b

    def best_of(self, values: Iterable[float]) -> float:
        """The best of `values` (NaN when there is none)."""
        best = math.nan
        for value in values:
            if self.better(float(value), best):
                best = float(value)
        return best

    def best_epoch(self, history: Mapping[int, Mapping[str, float]]) -> int:
        """The first epoch with the best `metric` in `{epoch: {name: value}}` (-1: none)."""
        epoch, best = -1, math.nan
        for number in sorted(history):
            value = history[number].get(self.metric)
            if value is not None and self.better(float(value), best):
                epoch, best = number, float(value)
        return epoch

    # ---------------------------------------------------------------- names

    @property
    def optuna_direction(self) -> str:
        """`minimize` or `maximize`: the Optuna study direction."""
        return DIRECTIONS[self.mode]

    @property
    def best_key(self) -> str:
        """The run's best-epoch metric name in MLflow, `<metric>_best`."""
        return f"{self.metric}_best"

    def describe(self) -> str:
        """`min(val/rmse)` / `max(val/ndcg_at_10)`."""
        return f"{self.mode}({self.metric})"

    def as_tags(self) -> dict[str, str]:
        return {f"selection.{k}": v for k, v in self.as_dict().items()}

    def as_dict(self) -> dict[str, str]:
        """{metric, mode}: the `selection` node, as the training module takes it."""
        return {"metric": self.metric, "mode": self.mode}
