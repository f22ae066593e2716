"""Small Lightning callbacks the framework does not ship."""

from __future__ import annotations

import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar


class EpochTimer(pl.Callback):
    """Logs `time/epoch_s`: wall seconds of each training epoch, its validation included
    (Lightning validates at the end of the epoch loop, before `on_train_epoch_end`)."""

    def __init__(self) -> None:
        self._start = 0.0
        self.durations: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        elapsed = time.perf_counter() - self._start
        self.durations.append(elapsed)
        pl_module.log("time/epoch_s", elapsed, on_epoch=True, batch_size=1)


class ValidationHistory(pl.Callback):
    """Keeps each epoch's validation metrics, `history[epoch][name]` (floats).

    When checkpoints are chosen on another metric (e.g. `val/ndcg_at_10`), the run still
    reports the validation RMSE of the chosen epoch from here.
    """

    def __init__(self) -> None:
        self.history: dict[int, dict[str, float]] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.history[trainer.current_epoch] = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith("val/")
        }


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar without `v_num` (the logger's version: a run id fragment that
    means nothing in the bar)."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
