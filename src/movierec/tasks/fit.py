"""The Lightning side of one training: the trainer with the configured callbacks and
loggers beside the framework's own, and a fit that a signal stops resumably."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ProgressBar

from movierec.config import build
from movierec.ranking.significance import PER_USER_FILE
from movierec.tasks.recording import RunRecording
from movierec.tracking.recorder import mlflow_node
from movierec.tracking.resume import Resume
from movierec.training.callbacks import CheckpointRecord, SplitHandoff
from movierec.training.fit_report import FitReport
from movierec.training.selection import Selection
from movierec.tuning.pruning import optuna_pruning

log = logging.getLogger(__name__)


def build_trainer(
    cfg: DictConfig, selection: Selection, resume: Resume, recording: RunRecording | None
) -> tuple[pl.Trainer, FitReport]:
    """The configured trainer, its configured callbacks (less those it would refuse) and
    loggers, then the framework's callbacks: the split handoff, the `FitReport` (returned),
    the run's `recording` (else a bare checkpoint record) and Optuna's pruning in a sweep.
    A recorded training's MLflow logger is its run's epoch logger, not a second one."""
    pruning = optuna_pruning(cfg.get("sweep"), selection.metric)
    mlflow = mlflow_node(cfg)
    report = FitReport(selection, resume.epoch, Path(cfg.paths.output_dir) / PER_USER_FILE)
    record = recording if recording is not None else CheckpointRecord(resume.record)
    own = [SplitHandoff(), report, record, *([pruning] if pruning is not None else [])]
    loggers = [
        build(node, f"logger.{name}")
        for name, node in (cfg.get("logger") or {}).items()
        if node and not (recording is not None and node is mlflow)
    ]
    callbacks = [build(node, f"callbacks.{name}") for name, node in cfg.callbacks.items() if node]
    if recording is None and not loggers:  # the learning-rate monitor needs a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not cfg.trainer.get("enable_progress_bar", True):  # the Trainer refuses both at once
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer = build(cfg.trainer, "trainer", callbacks=[*callbacks, *own], logger=loggers or False)
    return trainer, report


def fit(trainer: pl.Trainer, model, datamodule, ckpt_path: str | None, output_dir: Path) -> None:
    """`trainer.fit` (resuming from `ckpt_path`). Ctrl-C raises: `stopped_by` (SIGINT)
    or KeyboardInterrupt."""
    # weights_only: a checkpoint holds tensors and plain containers (training.checkpoints)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:  # Lightning's answer to Ctrl-C (SIGINT): teardown, then exit(1)
        if trainer.interrupted:
            raise stopped_by(signal.SIGINT, output_dir) from None
        raise
    if trainer.interrupted:
        raise KeyboardInterrupt


def stopped_by(signum: signal.Signals, output_dir: Path) -> SystemExit:
    """Log how to resume a training (writing to `output_dir`) that `signum` stopped; the
    exit that says it was stopped."""
    last = output_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.warning("stopped by %s; resume with ckpt_path=%s", signum.name, last)
    else:
        log.warning("stopped by %s before the first checkpoint; nothing to resume", signum.name)
    return SystemExit(128 + signum)
