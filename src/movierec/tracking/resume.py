"""A resumed training continues its own run, or is refused in one line.

Every checkpoint a training saves records who wrote it (`RunRecord`): the MLflow run id,
the seed, and the settings that make the run what it is (data, split and model, machine
paths left out). `check_resume` compares that record with the run a resume would continue
(the `mlflow_run_id` of the checkpoint's run folder; a checkpoint copied elsewhere starts a
new run) and with the resuming config, before any data is loaded. A checkpoint of an
older version of the project has no record and is taken as it is, with a warning.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from movierec.errors import ConfigError
from movierec.tracking.lifecycle import run_id_for_checkpoint
from movierec.tracking.lineage import split_machine_paths
from movierec.tracking.params import flatten_config
from movierec.training.checkpoints import read_checkpoint

log = logging.getLogger(__name__)

RECORD_KEY = "movierec_run"
#: the config groups that define what a run learns (trainer, callbacks, logger may change)
IDENTITY_GROUPS = ("data", "split", "model")
#: settings of those groups that change how, not what: the same data either way
HOW_KEYS = ("data.engine", "data.spark.")
MAX_SHOWN = 3


class RunRecord(Callback):
    """Writes `record` into every checkpoint Lightning saves, under `RECORD_KEY`."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[RECORD_KEY] = self.record


def run_record(cfg: DictConfig, run_id: str | None) -> dict[str, Any]:
    """What a checkpoint of this training records about it."""
    return {"mlflow_run_id": run_id, "seed": int(cfg.seed), "config": identity(cfg)}


def identity(cfg: DictConfig) -> dict[str, str]:
    """The flattened, resolved data, split and model settings, without machine paths."""
    settings, _paths = split_machine_paths(flatten_config(cfg))
    return {
        k: v
        for k, v in settings.items()
        if k.split(".", 1)[0] in IDENTITY_GROUPS and not k.startswith(HOW_KEYS)
    }


def check_resume(cfg: DictConfig) -> None:
    """Refuse (`ConfigError`) a `ckpt_path` written by another run, seed or config."""
    path = cfg.get("ckpt_path")
    if not path:
        return
    record = read_checkpoint(path).get(RECORD_KEY)
    if record is None:
        log.warning("ckpt_path=%s records no run (an older checkpoint): not checked", path)
        return
    folder_run = run_id_for_checkpoint(path)  # None: a checkpoint away from its folder
    if folder_run is not None and record.get("mlflow_run_id") != folder_run:
        raise ConfigError(
            f"ckpt_path={path}: written by MLflow run {record.get('mlflow_run_id')}, but its "
            f"run folder continues run {folder_run} (two trainings shared the folder); "
            "resume from a checkpoint of the run's own folder"
        )
    if record.get("seed") != int(cfg.seed):
        raise ConfigError(
            f"ckpt_path={path}: written with seed={record.get('seed')}, this run has "
            f"seed={cfg.seed}; resume with seed={record.get('seed')}"
        )
    mine, theirs = identity(cfg), record.get("config", {})
    changed = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    if changed:
        shown = ", ".join(
            f"{k}={theirs.get(k, '<unset>')} (this run: {mine.get(k, '<unset>')})"
            for k in changed[:MAX_SHOWN]
        )
        more = f" and {len(changed) - MAX_SHOWN} more" if len(changed) > MAX_SHOWN else ""
        raise ConfigError(
            f"ckpt_path={path}: written with other settings: {shown}{more}; resume with "
            "the settings of the run it continues"
        )
