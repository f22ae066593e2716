"""`RunRecording`: one training's tracked run, opened and recorded by a Lightning callback.

The run opens once Lightning has set the data up and the module has its split
(`training.callbacks.SplitHandoff` comes first among the callbacks), so bad data, a loss
the network cannot train with or a selection metric it does not log is refused before
any run exists. The run's epoch logger then joins the trainer's loggers. When the last
stage (the test, or the fit without one) has ended, the run gets its outputs, the
servable model and, if asked, its registration. Around `fit` and `test` the recording is a context
manager that ends the run FINISHED, FAILED or KILLED whatever happens.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from movierec.serving.pyfunc import publish_trained_model
from movierec.tasks.describe import run_outputs, summarize_split
from movierec.tracking.description import RunDescription
from movierec.tracking.recorder import open_run, record_outputs
from movierec.tracking.registry import CHAMPION
from movierec.tracking.report_html import is_main_metric
from movierec.tracking.resume import Resume
from movierec.tracking.tracker import Run, Tracker
from movierec.training.callbacks import CheckpointRecord
from movierec.training.fit_report import FitReport
from movierec.training.selection import Selection


class RunRecording(CheckpointRecord):
    """Records one training in a run of `tracker`; like every `CheckpointRecord`, writes
    the run id (once the run is open) into the training's checkpoints.

    Args:
        description: the run's names, choices and config (`tasks.describe.describe_run`).
        selection: the selection metric, tagged and summarized as `<metric>_best`.
        resume: where the training starts: the run it continues (None: a new run) and
            what its checkpoints record.
        parent_run_id: the cross-validation parent of a fold's run.
        registry: {name, alias} to register the published model under (None: not).
        ui_url: the MLflow UI the printed links point to.
        last_stage: "test", or "fit" when the training is not tested; when it ends the
            run gets the training's `FitReport` metrics and outputs.
    """

    def __init__(
        self, tracker: Tracker, description: RunDescription, selection: Selection,
        resume: Resume, *, parent_run_id: str | None, registry: dict | None, ui_url: str,
        last_stage: str,
    ) -> None:  # fmt: skip
        super().__init__(resume.record)
        self.tracker = tracker
        self.description = description
        self.selection = selection
        self.parent_run_id = parent_run_id
        self.resume_run_id = resume.run_id
        self.registry = registry
        self.ui_url = ui_url
        self.last_stage = last_stage
        self.run: Run | None = None
        self.links: dict[str, str] = {}

    def __enter__(self) -> RunRecording:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.run is not None:
            self.run.__exit__(exc_type, exc, tb)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.run is not None or stage != "fit":
            return
        split = summarize_split(trainer.datamodule)
        self.run = open_run(
            self.tracker, self.description, split, self.selection,
            parent_run_id=self.parent_run_id, resume_run_id=self.resume_run_id,
        )  # fmt: skip
        self.run_id = self.run.run_id
        if not trainer.fast_dev_run:  # a dry run logs nothing (Lightning's loggers neither)
            trainer.loggers = [self.run.epoch_logger(), *trainer.loggers]

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # called when a stage ends without an error (after its end hooks, out of the test
        # loop's inference mode), even one that ran no batch
        if stage == self.last_stage:
            self._record(trainer, pl_module)

    def _record(self, trainer: pl.Trainer, model) -> None:
        """Outputs, the servable model and its registration on the run; the links."""
        assert self.run is not None
        run, metrics, datamodule = self.run, FitReport.of(trainer).metrics, trainer.datamodule
        checkpoint = metrics["best_checkpoint"]
        outputs = run_outputs(datamodule, model, checkpoint, self.description.output_dir)
        record_outputs(run, self.description, outputs, metrics, self.selection)
        if checkpoint:
            uri = publish_trained_model(run, checkpoint, datamodule)
            run.set_tags({"model_uri": uri})
            if self.registry is not None:
                run.set_tags(self._register(uri, datamodule.split.name, metrics))
        self.links = run_links(self.ui_url, run, self.selection, metrics)

    def _register(self, model_uri: str, split: str, metrics: dict[str, Any]) -> dict[str, str]:
        """Register the run's model (`registry.name`, default movierec-<dataset>-<model>)
        and move `registry.alias` when the selection metric beats the current holder's."""
        assert self.run is not None and self.registry is not None
        dataset, selection = self.description.dataset, self.selection
        name = self.registry.get("name") or f"movierec-{dataset}-{self.description.model}"
        return self.run.register(
            name, model_uri,
            metric=selection.metric, mode=selection.mode, value=metrics[selection.metric],
            dataset=dataset, split=split, alias=self.registry.get("alias") or CHAMPION,
        )  # fmt: skip


def run_links(ui_url: str, run: Run, selection: Selection, metrics: dict) -> dict[str, str]:
    """The run's name and UI links; the runs table sorted by the selection metric's best
    value, with the test metrics the result table shows as columns."""
    shown = [k for k in metrics if k.startswith("test/") and is_main_metric(k)]
    return run.links(ui_url, selection.best_key, selection.mode == "min", shown)
