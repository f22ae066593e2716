"""A resumed training continues its own run, or is refused in one line.

Every checkpoint a training saves records who wrote it (`RunRecord`): the MLflow run id,
the seed, and the settings that make the run what it is (data, split and model, machine
paths left out). `read_resume` compares that record with the run a resume would continue
(the `mlflow_run_id` of the checkpoint's run folder; a checkpoint copied elsewhere starts a
new run) and with the resuming config, before any data is loaded. A checkpoint of an
older version of the project has no record and is taken as it is, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from movierec.errors import ConfigError
from movierec.tracking.lifecycle import run_id_for_checkpoint
from movierec.tracking.lineage import split_machine_paths
from movierec.tracking.params import flatten_config
from movierec.training.checkpoints import read_checkpoint
from movierec.training.former_layouts import current_identity

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


@dataclass(frozen=True)
class Resume:
    """Where a training starts: `ckpt_path` read once and checked (`read_resume`).

    Attributes:
        path: the checkpoint to resume from; None = a fresh start.
        epoch: its epoch (-1 without one).
        run_id: the MLflow run its run folder continues (None: a new run).
        seed, config: what this training's checkpoints record about it (`record`).
    """

    path: str | None
    epoch: int
    run_id: str | None
    seed: int
    config: dict[str, str]

    def record(self, run_id: str | None) -> dict[str, Any]:
        """What a checkpoint of this training (of run `run_id`) records about it."""
        return {"mlflow_run_id": run_id, "seed": self.seed, "config": self.config}


def read_resume(cfg: DictConfig) -> Resume:
    """The training's `Resume`; `ConfigError` for a `ckpt_path` written by another run,
    seed or config, `DataError` for a missing or damaged one (before any data is read)."""
    path = cfg.get("ckpt_path") or None
    resume = Resume(path and str(path), -1, None, int(cfg.seed), identity(cfg))
    if path is None:
        return resume
    checkpoint = read_checkpoint(path)
    folder_run = run_id_for_checkpoint(path)  # None: a checkpoint away from its folder
    _check_record(resume, checkpoint.get(RECORD_KEY), folder_run)
    return replace(resume, epoch=int(checkpoint.get("epoch", -1)), run_id=folder_run)


def identity(cfg: DictConfig) -> dict[str, str]:
    """The flattened, resolved data, split and model settings, without machine paths."""
    settings, _paths = split_machine_paths(flatten_config(cfg))
    return {
        k: v
        for k, v in settings.items()
        if k.split(".", 1)[0] in IDENTITY_GROUPS and not k.startswith(HOW_KEYS)
    }


def _check_record(resume: Resume, record: dict | None, folder_run: str | None) -> None:
    """Refuse (`ConfigError`) a checkpoint whose `record` is another run's, seed's or
    config's than `resume`'s."""
    path = resume.path
    if record is None:
        log.warning("ckpt_path=%s records no run (an older checkpoint): not checked", path)
        return
    if folder_run is not None and record.get("mlflow_run_id") != folder_run:
        raise ConfigError(
            f"ckpt_path={path}: written by MLflow run {record.get('mlflow_run_id')}, but its "
            f"run folder continues run {folder_run} (two trainings shared the folder); "
            "resume from a checkpoint of the run's own folder"
        )
    if record.get("seed") != resume.seed:
        raise ConfigError(
            f"ckpt_path={path}: written with seed={record.get('seed')}, this run has "
            f"seed={resume.seed}; resume with seed={record.get('seed')}"
        )
    mine, theirs = resume.config, current_identity(record.get("config", {}))
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
