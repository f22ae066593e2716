"""The Lightning side of one training: the trainer with the configured callbacks and
loggers beside the framework's own, and a fit and test that a signal stops resumably."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from pytorch_lightning.utilities.exceptions import SIGTERMException

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
    loggers, and the framework's callbacks: the split handoff (first), the `FitReport`
    (returned), the run's `recording` (else a bare checkpoint record) and Optuna's pruning
    in a sweep. A recorded training's MLflow logger is its run's epoch logger, not a
    second one."""
    pruning = optuna_pruning(cfg.get("sweep"), selection.metric)
    mlflow = mlflow_node(cfg)
    report = FitReport(selection, resume.epoch, Path(cfg.paths.output_dir) / PER_USER_FILE)
    record = recording if recording is not None else CheckpointRecord(resume.record)
    own = [report, record, *([pruning] if pruning is not None else [])]
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
    # without a configured checkpoint, none (Lightning would add one that chooses no epoch)
    checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    trainer = build(
        cfg.trainer, "trainer",
        # the split's handoff first: every other callback's setup sees a built module
        callbacks=[SplitHandoff(), *callbacks, *own], logger=loggers or False,
        enable_checkpointing=checkpointing and cfg.trainer.get("enable_checkpointing", True),
    )  # fmt: skip
    return trainer, report


def fit_and_test(
    trainer: pl.Trainer, model, datamodule, resume_from: str | None, output_dir: Path, *,
    test: bool,
) -> None:  # fmt: skip
    """`trainer.fit` (resuming from `resume_from`), then, if `test`, `trainer.test` of the
    best checkpoint (of the last weights without one). A signal ends it with the exit
    that says so and a hint to resume (`stopped_by`): SIGTERM 128 + 15 (Lightning would
    stop cleanly with status 0), Ctrl-C 128 + 2."""
    # weights_only: a checkpoint holds tensors and plain containers (training.checkpoints)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        if trainer.interrupted:
            raise KeyboardInterrupt
        if test:
            best = trainer.checkpoint_callback  # the configured one (`build_trainer`)
            ckpt = "best" if best is not None and best.best_model_path else None
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False,
                         weights_only=True)  # fmt: skip
    except SIGTERMException:
        raise stopped_by(signal.SIGTERM, output_dir) from None
    except SystemExit:  # Lightning's answer to Ctrl-C (SIGINT): teardown, then exit(1)
        if trainer.interrupted:
            raise stopped_by(signal.SIGINT, output_dir) from None
        raise


def stopped_by(signum: signal.Signals, output_dir: Path) -> SystemExit:
    """Log how to resume a training (writing to `output_dir`) that `signum` stopped; the
    exit that says it was stopped."""
    last = output_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.warning("stopped by %s; resume with ckpt_path=%s", signum.name, last)
    else:
        log.warning("stopped by %s before the first checkpoint; nothing to resume", signum.name)
    return SystemExit(128 + signum)
