"""Callbacks that break a training on purpose, to test how runs end."""

from __future__ import annotations

import pytorch_lightning as pl


class RaiseAtEpoch(pl.Callback):
    """Raises `error` ("runtime" → RuntimeError, "interrupt" → KeyboardInterrupt) at `epoch`."""

    def __init__(self, epoch: int = 1, error: str = "runtime") -> None:
        self.epoch = epoch
        self.error = error

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            if self.error == "interrupt":
                raise KeyboardInterrupt
            raise RuntimeError(f"bad value discovered at epoch {self.epoch}")
