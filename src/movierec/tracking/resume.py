"""A resumed training continues its own run, or is refused in one line.

Every checkpoint a training saves records who wrote it
(`training.callbacks.CheckpointRecord`): the MLflow run id, the seed, and the settings
that make the run what it is (data, split and model, machine paths left out).
`read_resume` compares that record with the run a resume would continue (the
`mlflow_run_id` of the checkpoint's run folder; a checkpoint copied elsewhere starts a
new run) and with the resuming config, before any data is loaded. A checkpoint of an
older version of the project has no record and is taken as it is, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from movierec.errors import ConfigError
from movierec.tracking.lifecycle import run_id_for_checkpoint
from movierec.tracking.lineage import split_machine_paths
from movierec.tracking.params import flatten_config
from movierec.training.checkpoints import read_record

log = logging.getLogger(__name__)

#: the config groups that define what a run learns (trainer, callbacks, logger may change)
IDENTITY_GROUPS = ("data", "split", "model")
#: settings of those groups that change how, not what: the same data either way
HOW_KEYS = ("data.engine", "data.spark.")
MAX_SHOWN = 3


@dataclass(frozen=True)
class Resume:
    """Where a training starts: `ckpt_path` read once and checked (`read_resume`).

    Attributes:
        path: the checkpoint to resume from; None = a fresh start.
        epoch: its epoch (-1 without one).
        run_id: the MLflow run its run folder continues (None: a new run).
        record: what this training's checkpoints record about it (seed, settings;
            `training.callbacks.CheckpointRecord` adds the run id).
    """

    path: str | None
    epoch: int
    run_id: str | None
    record: dict[str, Any]


def read_resume(cfg: DictConfig) -> Resume:
    """The training's `Resume`; `ConfigError` for a `ckpt_path` written by another run,
    seed or config, `DataError` for a missing or damaged one (before any data is read)."""
    path = cfg.get("ckpt_path") or None
    mine = {"seed": int(cfg.seed), "config": identity(cfg)}
    if path is None:
        return Resume(None, -1, None, mine)
    path = str(path)
    folder_run = run_id_for_checkpoint(path)  # None: a checkpoint away from its folder
    theirs, epoch = read_record(path)
    if theirs is None:
        log.warning("ckpt_path=%s records no run (an older checkpoint): not checked", path)
    elif folder_run is not None and theirs.get("mlflow_run_id") != folder_run:
        raise ConfigError(
            f"ckpt_path={path}: written by MLflow run {theirs.get('mlflow_run_id')}, but its "
            f"run folder continues run {folder_run} (two trainings shared the folder); "
            "resume from a checkpoint of the run's own folder"
        )
    elif theirs.get("seed") != mine["seed"]:
        raise ConfigError(
            f"ckpt_path={path}: written with seed={theirs.get('seed')}, this run has "
            f"seed={mine['seed']}; resume with seed={theirs.get('seed')}"
        )
    elif changed := changed_settings(mine["config"], theirs["config"]):
        raise ConfigError(
            f"ckpt_path={path}: written with other settings: {changed}; resume with the "
            "settings of the run it continues"
        )
    return Resume(path, epoch, folder_run, mine)


def identity(cfg: DictConfig) -> dict[str, str]:
    """The flattened, resolved data, split and model settings, without machine paths."""
    settings, _paths = split_machine_paths(flatten_config(cfg))
    return {
        k: v
        for k, v in settings.items()
        if k.split(".", 1)[0] in IDENTITY_GROUPS and not k.startswith(HOW_KEYS)
    }


def changed_settings(mine: dict[str, str], theirs: dict[str, str]) -> str:
    """The settings a checkpoint was written with that differ from this run's, as the
    message shows them ("" when none differ)."""
    changed = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    shown = ", ".join(
        f"{k}={theirs.get(k, '<unset>')} (this run: {mine.get(k, '<unset>')})"
        for k in changed[:MAX_SHOWN]
    )
    more = f" and {len(changed) - MAX_SHOWN} more" if len(changed) > MAX_SHOWN else ""
    return shown + more
