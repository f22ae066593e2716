"""The training loop's optimisation settings, checked in one place: by `RatingPredictor`
when it is built and, before any work, by the train task's settings check (this module
imports nothing heavy). The ranking and selection settings check themselves
(`ranking.settings.RankingSettings`, `training.selection.Selection`)."""

from __future__ import annotations

from typing import Any

from movierec.errors import ConfigError


def check_optimisation(lr: Any, weight_decay: Any) -> None:
    """Refuse an unusable learning rate or weight decay, naming its key."""
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise ConfigError(f"model.lr={lr!r}: expected a positive learning rate")
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ConfigError(f"model.weight_decay={weight_decay!r}: expected ≥ 0")
