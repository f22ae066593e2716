"""Fit and test one split: the Lightning trainer with the run's loggers and callbacks, the
fit, the test of the chosen epoch, and the metrics a training reports (`metrics.json`)."""

from __future__ import annotations

import logging
import math
import resource
import signal
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from pytorch_lightning.utilities import rank_zero_only

from movierec.config import build
from movierec.data.datamodule import MovieLensDataModule
from movierec.ranking.significance import PER_USER_FILE, write_per_user
from movierec.tracking.recorder import mlflow_node
from movierec.tracking.resume import Resume, RunRecord
from movierec.tracking.tracker import Run
from movierec.training.callbacks import EpochTimer, ValidationHistory
from movierec.training.checkpoints import checkpoint_epoch
from movierec.training.module import RatingPredictor
from movierec.training.selection import Selection
from movierec.tuning.pruning import optuna_pruning

log = logging.getLogger(__name__)


def fit_and_test(
    cfg: DictConfig, datamodule: MovieLensDataModule, model: RatingPredictor,
    run: Run | None, selection: Selection, resume: Resume,
) -> dict[str, Any]:  # fmt: skip
    """Fit (from `resume`'s checkpoint, if any), test the epoch `selection` chose; the
    metrics: the chosen epoch's validation ones (selection metric first), the test ones,
    the last epoch's (`<name>_last`), then the bookkeeping (epochs, seconds, memory, the
    best checkpoint)."""
    callbacks = _callbacks(cfg, run, resume, selection)
    trainer: pl.Trainer = build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=_loggers(cfg, run) or False
    )
    output_dir = Path(cfg.paths.output_dir)
    fit_seconds = _fit(trainer, model, datamodule, resume.path, output_dir)
    checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    history = next(c for c in callbacks if isinstance(c, ValidationHistory))
    best_epoch, chosen = chosen_epoch(selection, checkpoint, history)
    metrics = _validation(selection, chosen, model.validation_metrics())
    if cfg.get("test", True):
        metrics.update(_test(trainer, model, datamodule, checkpoint, output_dir))
    timer = next(c for c in callbacks if isinstance(c, EpochTimer))
    metrics.update(_last_epoch(trainer, model.validation_metrics()))
    metrics.update(_bookkeeping(trainer, model, timer, fit_seconds, resume.epoch))
    metrics.update(selection=selection.describe(), best_epoch=best_epoch)
    metrics["seconds_to_best"] = _seconds_to(best_epoch, timer.durations, resume.epoch)
    metrics["best_checkpoint"] = checkpoint.best_model_path if checkpoint else ""
    return metrics


def stopped_by(signum: signal.Signals, output_dir: Path) -> SystemExit:
    """Log how to resume a training (writing to `output_dir`) that `signum` stopped; the
    exit that says it was stopped."""
    last = output_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.warning("stopped by %s; resume with ckpt_path=%s", signum.name, last)
    else:
        log.warning("stopped by %s before the first checkpoint; nothing to resume", signum.name)
    return SystemExit(128 + signum)


def _loggers(cfg: DictConfig, run: Run | None) -> list:
    """The run's epoch logger, then the other configured loggers (an MLflow logger whose
    run is not this process's, DDP ranks > 0, logs nothing)."""
    loggers = [run.epoch_logger()] if run is not None else []
    for name, node in (cfg.get("logger") or {}).items():
        if node and not (run is not None and node is mlflow_node(cfg)):
            loggers.append(build(node, f"logger.{name}"))
    return loggers


def _callbacks(
    cfg: DictConfig, run: Run | None, resume: Resume, selection: Selection
) -> list[pl.Callback]:
    """The configured callbacks (less those the trainer would refuse) and the framework's:
    the epoch timer, the run record, the validation history and Optuna's pruning."""
    callbacks = [build(node, f"callbacks.{name}") for name, node in cfg.callbacks.items() if node]
    if run is None and not any((cfg.get("logger") or {}).values()):  # it needs a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not cfg.trainer.get("enable_progress_bar", True):  # the Trainer refuses both at once
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    callbacks += [EpochTimer(), RunRecord(resume.record(run.run_id if run else None))]
    callbacks.append(ValidationHistory())
    pruning = optuna_pruning(cfg.get("sweep"), selection.metric)
    return [*callbacks, pruning] if pruning is not None else callbacks


def _fit(trainer: pl.Trainer, model, datamodule, ckpt_path: str | None, output_dir: Path) -> float:
    """`trainer.fit` (resuming from `ckpt_path`); its seconds. Ctrl-C raises."""
    started = time.perf_counter()
    # weights_only: a checkpoint holds tensors and plain containers (training.checkpoints)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:  # Lightning's answer to Ctrl-C (SIGINT): teardown, then exit(1)
        if trainer.interrupted:
            raise stopped_by(signal.SIGINT, output_dir) from None
        raise
    if trainer.interrupted:
        raise KeyboardInterrupt
    return time.perf_counter() - started


def _validation(selection: Selection, chosen: dict, logged: list[str]) -> dict[str, float]:
    """The chosen epoch's selection metric first, then its other validation metrics."""
    return {
        selection.metric: chosen.get(selection.metric, math.nan),
        **{name: chosen.get(name, math.nan) for name in logged},
    }


def _test(trainer, model, datamodule, checkpoint, output_dir: Path) -> dict[str, float]:
    """Test the best checkpoint; write the per-user ranking metrics beside the run."""
    ckpt = "best" if checkpoint is not None and checkpoint.best_model_path else None
    results = trainer.test(
        model, datamodule=datamodule, ckpt_path=ckpt, verbose=False, weights_only=True
    )
    if rank_zero_only.rank == 0:
        user_ids = datamodule.data.users["userId"].to_numpy()
        write_per_user(model.test_ranking, user_ids, output_dir / PER_USER_FILE)
    return {k: float(v) for k, v in results[0].items()}


def _seconds_to(epoch: int, durations: list[float], resumed_from: int) -> float:
    """Training seconds of this process up to the end of `epoch` (the first timed epoch
    is `resumed_from` + 1); NaN without a chosen epoch in this process."""
    if epoch <= resumed_from:
        return math.nan
    return sum(durations[: epoch - resumed_from])


def _last_epoch(trainer: pl.Trainer, logged: list[str]) -> dict[str, float]:
    values = trainer.callback_metrics
    return {f"{n}_last": float(values[n]) if n in values else math.nan for n in logged}


def _bookkeeping(trainer, model, timer: EpochTimer, fit_seconds: float, resumed_from: int) -> dict:
    durations = timer.durations
    return {
        "epochs": trainer.current_epoch,
        "resumed_from_epoch": resumed_from,
        "epochs_this_run": len(durations),
        "fit_seconds": fit_seconds,
        "seconds_per_epoch": sum(durations) / len(durations) if durations else math.nan,
        # the first epoch also builds caches (adjacency); the last is the steady state
        "last_epoch_seconds": durations[-1] if durations else math.nan,
        "parameters": sum(p.numel() for p in model.parameters()),
        # this process's peak so far, MiB (Linux reports KiB)
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # the accelerator's peak, where there is one (None on CPU)
        "peak_gpu_mb": (
            torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
        ),
    }


def chosen_epoch(
    selection: Selection, checkpoint: ModelCheckpoint | None, history: ValidationHistory
) -> tuple[int, dict[str, float]]:
    """The epoch `selection` picked (-1: none) and its validation metrics.

    With a best checkpoint, its epoch and score (they survive a resume, which the
    per-epoch history of this process does not); else the best epoch of the history.
    """
    if checkpoint is not None and checkpoint.best_model_path:
        epoch = checkpoint_epoch(checkpoint.best_model_path)
        values = dict(history.history.get(epoch, {}))
        if checkpoint.best_model_score is not None:
            values[selection.metric] = float(checkpoint.best_model_score)
        return epoch, values
    epoch = selection.best_epoch(history.history)
    return epoch, dict(history.history.get(epoch, {}))
