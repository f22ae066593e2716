"""Small Lightning callbacks the framework does not ship."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from movierec.training.checkpoints import RECORD_KEY


class SplitHandoff(pl.Callback):
    """Hands the datamodule's split to the module once Lightning has set the data up.

    Lightning prepares the data inside `fit` (the node's first process downloads and
    caches it), then calls the `setup` hooks of the datamodule, the callbacks and the
    module in that order; here, between the first and the last, the module gets the split
    (`RatingPredictor.use_split`: it builds its network for the data's sizes and checks
    its selection metric) and the datamodule frees the ratings table the split no
    longer needs. Callbacks listed after this one see a built module.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if pl_module.split is not None or datamodule is None:
            return  # handed over for fit already (test, validate after fit)
        pl_module.use_split(datamodule.split_data)
        datamodule.release_ratings_table()


class CheckpointRecord(pl.Callback):
    """Writes `record` (what makes the training what it is: seed, settings) and the run id
    into every checkpoint Lightning saves, under `checkpoints.RECORD_KEY`, so a resume can
    tell whose checkpoint it is. `run_id` is set when the training's run opens (None:
    no run)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.run_id: str | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[RECORD_KEY] = {"mlflow_run_id": self.run_id, **self.record}


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar without `v_num` (the logger's version: a run id fragment that
    means nothing in the bar)."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
