"""The training loop's own settings (optimisation, ranking on validation, selection
mode), checked in one place: by `RatingPredictor` when it is built and, before any work,
by the train task's settings check (this module imports nothing heavy)."""

from __future__ import annotations

from typing import Any

from movierec.errors import ConfigError
from movierec.training.selection import MODES


def check_training_settings(
    lr: Any, weight_decay: Any, validate_ranking: Any, ks: Any, validation_users: Any,
    selection_mode: Any,
) -> None:  # fmt: skip
    """Refuse an unusable optimisation, ranking or selection setting, naming its key."""
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise ConfigError(f"model.lr={lr!r}: expected a positive learning rate")
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ConfigError(f"model.weight_decay={weight_decay!r}: expected ≥ 0")
    if validate_ranking and not ks:
        raise ConfigError("ranking.validate=true needs ranking.k ≥ 1 (it is 0 or []: off)")
    if not isinstance(validation_users, int) or validation_users < 0:
        raise ConfigError(
            f"ranking.val_users={validation_users!r}: expected an integer ≥ 0 (0 = all)"
        )
    if selection_mode not in MODES:
        raise ConfigError(f"selection.mode={selection_mode!r}: expected min or max")
