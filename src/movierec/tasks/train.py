"""The train task: one split, read straight through.

Build the parts once (the selection, the tracker, the resume point, the run's recording,
the trainer with its callbacks, the datamodule and the module), let Lightning prepare
the data, fit and test, then report. Everything that needs the prepared data happens
inside `fit`, in Lightning's hooks: the module builds its network for the data's sizes
(`training.callbacks.SplitHandoff`), the run opens and is recorded
(`tasks.recording.RunRecording`) and the metrics are gathered
(`training.fit_report.FitReport`). `split.fold=all` is `tasks.cross_validation`.

`train(cfg)` returns the metric a sweep optimizes: the best epoch's value of
`selection.metric`, never a test metric.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from movierec.config import build, module_settings
from movierec.tasks.describe import describe_run
from movierec.tasks.fit import build_trainer, fit_and_test
from movierec.tasks.recording import RunRecording
from movierec.tasks.result_table import report_result
from movierec.tracking.recorder import tracker_for
from movierec.tracking.resume import Resume, read_resume
from movierec.tracking.tracker import Tracker
from movierec.training.distributed import claim_rank_from_environment
from movierec.training.selection import Selection


def train(cfg: DictConfig, tracker: Tracker | None = None) -> float:
    """Train and test one split; return the best epoch's `selection.metric`. `tracker`:
    where the run goes (default: the configured MLflow logger's store, checked before
    any data; none without one). A bad selection, store or `ckpt_path` is refused here,
    before any data is read."""
    selection, tracker = training_parts(cfg, tracker)
    resume = read_resume(cfg)  # a checkpoint of another run, seed or config: refused here
    return float(train_fold(cfg, selection, tracker, resume)[selection.metric])


def training_parts(cfg: DictConfig, tracker: Tracker | None) -> tuple[Selection, Tracker | None]:
    """The selection (its monitors checked) and the tracker (the given one, else the
    configured store's, checked; none on DDP ranks but 0, whose rank is claimed first)."""
    selection = Selection.from_cfg(cfg)
    selection.check_monitors(cfg.get("callbacks"))
    claim_rank_from_environment(cfg.trainer.get("devices"))
    return selection, tracker or tracker_for(cfg)


def train_fold(
    cfg: DictConfig,
    selection: Selection,
    tracker: Tracker | None,
    resume: Resume,
    parent_run_id: str | None = None,
    *,
    report: bool = True,
) -> dict[str, Any]:
    """Fit `cfg`'s split from `resume`, test the best checkpoint, write `metrics.json`;
    return the metrics (the fit report's, and the run id).

    With a `tracker` the training is one run (a child of `parent_run_id` for a
    cross-validation fold), opened once the data and the module are checked and ended
    FINISHED, FAILED or KILLED whatever happens. `report`: print the result table.
    """
    tested, output_dir = bool(cfg.get("test", True)), Path(cfg.paths.output_dir)
    registry = OmegaConf.to_container(cfg.registry, resolve=True) if cfg.get("register") else None
    recording = None
    if tracker is not None:  # the description is read (and the config resolved) for a run only
        recording = RunRecording(
            tracker, describe_run(cfg), selection, resume, parent_run_id=parent_run_id,
            registry=registry, ui_url=str(cfg.mlflow_ui), last_stage="test" if tested else "fit",
        )  # fmt: skip
    trainer, fit_report = build_trainer(cfg, selection, resume, recording)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data, "data", split=cfg.split)
    model = build(
        module_settings(cfg.model), "model",
        # resolved here: its interpolations point into the whole config (model.fit…)
        ranking=OmegaConf.to_container(cfg.ranking, resolve=True),
        selection=selection.as_dict(),
    )  # fmt: skip
    with recording if recording is not None else nullcontext():
        fit_and_test(trainer, model, datamodule, resume.path, output_dir, test=tested)
    metrics = fit_report.metrics
    if recording is not None and recording.run is not None:
        metrics["mlflow_run_id"] = recording.run.run_id
    if rank_zero_only.rank == 0:
        links = recording.links if recording is not None else {}
        report_result(metrics, links, output_dir, print_table=report)
    return metrics
