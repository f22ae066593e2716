"""`FitReport`: what one training reports (`metrics.json`, the run's summary), gathered
by a Lightning callback while the trainer fits and tests."""

from __future__ import annotations

import math
import resource
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from movierec.ranking.significance import write_per_user
from movierec.training.checkpoints import checkpoint_epoch
from movierec.training.selection import Selection


class FitReport(pl.Callback):
    """Times each training epoch (`time/epoch_s`, wall seconds, its validation included)
    and keeps each epoch's validation metrics; at the end of the fit and of the test,
    `metrics`: the chosen epoch's validation metrics (selection metric first), the test
    metrics, the last epoch's (`<name>_last`), then the bookkeeping (epochs, seconds,
    memory, the best checkpoint). The test's per-user ranking is written to `per_user`.

    Args:
        selection: what picks the epoch (the best checkpoint's, else the history's best).
        resumed_from: the epoch of the checkpoint the fit resumes (-1: a fresh start).
        per_user: the per-user test metrics file (`ranking.significance`).
    """

    def __init__(self, selection: Selection, resumed_from: int, per_user: Path) -> None:
        self.selection = selection
        self.resumed_from = resumed_from
        self.per_user = per_user
        self.durations: list[float] = []  # this process's epochs, seconds
        self.history: dict[int, dict[str, float]] = {}  # epoch → validation metrics
        self.validation: dict[str, Any] = {}
        self.test: dict[str, float] = {}
        self.fit: dict[str, Any] = {}
        self._started = self._fit_started = 0.0

    @staticmethod
    def of(trainer: pl.Trainer) -> FitReport:
        """The trainer's `FitReport` (as `trainer.checkpoint_callback` is its checkpoint)."""
        return next(c for c in trainer.callbacks if isinstance(c, FitReport))

    @property
    def metrics(self) -> dict[str, Any]:
        """The training's metrics, in the order `metrics.json` lists them."""
        return {**self.validation, **self.test, **self.fit}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning validates at the end of the epoch loop, before on_train_epoch_end
        elapsed = time.perf_counter() - self._started
        self.durations.append(elapsed)
        pl_module.log("time/epoch_s", elapsed, on_epoch=True, batch_size=1)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.history[trainer.current_epoch] = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith("val/")
        }

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fit_seconds = time.perf_counter() - self._fit_started
        checkpoint = trainer.checkpoint_callback  # the configured one (tasks.fit)
        best_epoch, chosen = chosen_epoch(self.selection, checkpoint, self.history)
        logged = pl_module.validation_metrics()
        metric = self.selection.metric
        self.validation = {
            metric: chosen.get(metric, math.nan),
            **{name: chosen.get(name, math.nan) for name in logged},
        }
        values = trainer.callback_metrics
        self.fit = {f"{n}_last": float(values[n]) if n in values else math.nan for n in logged}
        self.fit.update(self._bookkeeping(trainer, pl_module, fit_seconds))
        self.fit.update(selection=self.selection.describe(), best_epoch=best_epoch)
        self.fit["seconds_to_best"] = self._seconds_to(best_epoch)
        self.fit["best_checkpoint"] = checkpoint.best_model_path if checkpoint else ""

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        values = trainer.callback_metrics
        self.test = {k: float(v) for k, v in values.items() if k.startswith("test/")}
        self.fit.update(_peak_memory())  # the test's peak too: the whole process's
        if rank_zero_only.rank == 0:
            user_ids = trainer.datamodule.data.users["userId"].to_numpy()
            write_per_user(pl_module.test_ranking, user_ids, self.per_user)

    def _seconds_to(self, epoch: int) -> float:
        """Training seconds of this process up to the end of `epoch` (the first timed
        epoch follows the resumed one); NaN without a chosen epoch in this process."""
        if epoch <= self.resumed_from:
            return math.nan
        return sum(self.durations[: epoch - self.resumed_from])

    def _bookkeeping(self, trainer, pl_module, fit_seconds: float) -> dict[str, Any]:
        durations = self.durations
        return {
            "epochs": trainer.current_epoch,
            "resumed_from_epoch": self.resumed_from,
            "epochs_this_run": len(durations),
            "fit_seconds": fit_seconds,
            "seconds_per_epoch": sum(durations) / len(durations) if durations else math.nan,
            # the first epoch also builds caches (adjacency); the last is the steady state
            "last_epoch_seconds": durations[-1] if durations else math.nan,
            "parameters": sum(p.numel() for p in pl_module.parameters()),
            **_peak_memory(),
        }


def _peak_memory() -> dict[str, float | None]:
    """This process's peak resident memory so far, MiB (Linux reports KiB), and the
    accelerator's peak allocation, where there is one (None on CPU)."""
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": (
            torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
        ),
    }


def chosen_epoch(
    selection: Selection,
    checkpoint: ModelCheckpoint | None,
    history: dict[int, dict[str, float]],
) -> tuple[int, dict[str, float]]:
    """The epoch `selection` picked (-1: none) and its validation metrics.

    With a best checkpoint, its epoch and score (they survive a resume, which the
    per-epoch `history` of this process does not); else the best epoch of the history.
    """
    if checkpoint is not None and checkpoint.best_model_path:
        epoch = checkpoint_epoch(checkpoint.best_model_path)
        values = dict(history.get(epoch, {}))
        if checkpoint.best_model_score is not None:
            values[selection.metric] = float(checkpoint.best_model_score)
        return epoch, values
    epoch = selection.best_epoch(history)
    return epoch, dict(history.get(epoch, {}))
