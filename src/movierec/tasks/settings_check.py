"""Settings checked before any work: before the data is read, an MLflow run is opened or
Lightning and PyG are imported (`tasks/entry.py` calls it first), so a bad value costs a
few seconds, not a data load. What needs the data or the network (a network's own keys,
the losses it supports) is checked when it is built, still before any run or training.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from movierec.checks import check_at_least, check_choice, check_int_at_least
from movierec.data.features import USER_FEATURE_KINDS
from movierec.data.sources import ENGINES
from movierec.data.validation import MISSING_MOVIE_POLICIES
from movierec.errors import ConfigError
from movierec.objective import Objective
from movierec.ranking.settings import RankingSettings
from movierec.training.former_layouts import OBJECTIVE_KEYS
from movierec.training.optim import optimizer_node, scheduler_node
from movierec.training.selection import Selection
from movierec.training.settings import check_optimisation

ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")


def check_train_settings(cfg: DictConfig) -> None:
    """Refuse the first invalid setting of a training config (a `ConfigError` naming it)."""
    Selection.from_cfg(cfg)
    RankingSettings.from_settings(cfg.get("ranking"))
    check_optimisation(cfg.model.get("lr"), cfg.model.get("weight_decay", 0.0))
    _check_model(cfg.model)
    _check_data(cfg.data)
    _check_trainer(cfg.trainer)
    patience = ((cfg.get("callbacks") or {}).get("early_stopping") or {}).get("patience")
    check_int_at_least("callbacks.early_stopping.patience", patience, 0, none_ok=True)


def _check_model(model: Any) -> None:
    for key in OBJECTIVE_KEYS:  # a file or override of the former layout
        if key in model:
            raise ConfigError(
                f"model.{key}: the objective's settings sit under model.objective; write "
                f"model.objective.{key}"
            )
    Objective.from_settings(model.get("objective"))
    optimizer_node(model.get("optimizer", "adam"))
    scheduler_node(model.get("scheduler"), model.get("scheduler_kwargs"))


def _check_data(data: Any) -> None:
    check_choice("data.user_features", data.get("user_features"), USER_FEATURE_KINDS)
    check_choice("data.engine", data.get("engine", "pandas"), ENGINES)
    check_choice("data.missing_movies", data.get("missing_movies", "error"), MISSING_MOVIE_POLICIES)
    check_int_at_least("data.batch_size", data.get("batch_size", 0), 0)
    check_int_at_least("data.eval_batch_size", data.get("eval_batch_size", 0), 0)


def _check_trainer(trainer: Any) -> None:
    check_int_at_least("trainer.max_epochs", trainer.get("max_epochs"), -1, none_ok=True)
    check_int_at_least("trainer.min_epochs", trainer.get("min_epochs"), 0, none_ok=True)
    every = trainer.get("check_val_every_n_epoch", 1)
    check_int_at_least("trainer.check_val_every_n_epoch", every, 1, none_ok=True)
    check_int_at_least("trainer.log_every_n_steps", trainer.get("log_every_n_steps", 1), 1)
    check_choice("trainer.accelerator", trainer.get("accelerator", "auto"), ACCELERATORS)
    clip = trainer.get("gradient_clip_val")
    if clip is not None:
        check_at_least("trainer.gradient_clip_val", clip, 0)
