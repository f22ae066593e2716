"""The train task: compose data, model, callbacks, logger and trainer; fit, test, report.

`train(cfg)` returns the metric a sweep optimizes: the best epoch's value of
`selection.metric` (the mean over folds for `split.fold=all`), never a test metric.
"""

from __future__ import annotations

import json
import logging
import signal
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from movierec.config import build
from movierec.data.datamodule import MovieLensDataModule
from movierec.serving.pyfunc import publish_trained_model
from movierec.tasks.describe import describe_run, run_outputs, summarize_split
from movierec.tasks.fit import fit_and_test, stopped_by
from movierec.tasks.result_table import fold_line, result_lines, summary_lines
from movierec.tracking.description import RunDescription
from movierec.tracking.recorder import (
    open_cv_parent,
    open_run,
    record_cv_summary,
    record_outputs,
    tracker_for,
)
from movierec.tracking.registry import CHAMPION
from movierec.tracking.report_html import is_main_metric
from movierec.tracking.resume import read_resume
from movierec.tracking.tracker import Run, Tracker
from movierec.training.distributed import claim_rank_from_environment, local_rank
from movierec.training.module import RatingPredictor, module_settings
from movierec.training.selection import Selection

log = logging.getLogger(__name__)


def train(cfg: DictConfig, tracker: Tracker | None = None) -> float:
    """Train one split, or every fold when `split.fold=all`; return the best epoch's
    `selection.metric` (the mean over folds). `tracker`: where the runs go (default: the
    configured MLflow logger's store, checked before any data; none without one)."""
    selection = Selection.from_cfg(cfg)
    selection.check_monitors(cfg.get("callbacks"))
    claim_rank_from_environment(cfg.trainer.get("devices"))
    tracker = tracker or tracker_for(cfg)
    try:
        if cfg.split.get("fold") == "all":
            return cross_validate(cfg, selection, tracker)
        return float(train_fold(cfg, selection, tracker)[selection.metric])
    except SIGTERMException:
        # Lightning stops cleanly after the current batch but exits with status 0;
        # a killed job must not look like a finished one to a shell or a scheduler.
        raise stopped_by(signal.SIGTERM, Path(cfg.paths.output_dir)) from None


def train_fold(
    cfg: DictConfig,
    selection: Selection,
    tracker: Tracker | None,
    parent_run_id: str | None = None,
    *,
    report: bool = True,
) -> dict[str, Any]:
    """Fit on one split, test the best checkpoint, write `metrics.json`; return the metrics.

    With a `tracker` the training is one run (a child of `parent_run_id` for a
    cross-validation fold); it ends FINISHED, FAILED or KILLED whatever happens. A
    `selection` the run cannot follow is refused before any run or training starts.
    """
    resume = read_resume(cfg)  # a checkpoint of another run, seed or config: refused here
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: MovieLensDataModule = build(cfg.data, "data", split=cfg.split)
    if local_rank() == 0:
        # Lightning calls prepare_data inside fit, but the model's layer sizes come from
        # the data, so the node's first process prepares it before anything is built.
        datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.release_ratings_table()
    model = build_module(cfg, datamodule, selection)
    selection.check(model.validation_metrics())
    run = None
    if tracker is not None:  # the description is read (and the config resolved) for a run only
        description = describe_run(cfg)
        run = open_run(tracker, description, summarize_split(datamodule), selection,
                       parent_run_id=parent_run_id, resume_run_id=resume.run_id)  # fmt: skip
    links: dict[str, str] = {}
    with run if run is not None else nullcontext():
        metrics = fit_and_test(cfg, datamodule, model, run, selection, resume)
        if run is not None:
            registry = cfg.registry if cfg.get("register") else None
            _record(run, description, datamodule, model, selection, metrics, registry)
            links = _links(str(cfg.mlflow_ui), run, selection, metrics)
    if rank_zero_only.rank == 0:
        _write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
        if report:
            print("\n".join(result_lines(metrics, links)))
    return metrics


def build_module(
    cfg: DictConfig, datamodule: MovieLensDataModule, selection: Selection
) -> RatingPredictor:
    """The training module of `cfg.model` over the prepared `datamodule`'s split."""
    model: RatingPredictor = build(
        module_settings(cfg.model),
        "model",
        schema=datamodule.schema.as_dict(),
        # resolved here: its interpolations point into the whole config (model.fit…)
        ranking=OmegaConf.to_container(cfg.ranking, resolve=True),
        selection=selection.as_dict(),
    )
    model.use_split(datamodule.split_data)
    return model


def _record(
    run: Run, description: RunDescription, datamodule, model, selection: Selection,
    metrics: dict, registry: DictConfig | None,
) -> None:  # fmt: skip
    """Outputs, the servable model (and its registration when `registry` is given) on the
    run; the run id in `metrics`."""
    checkpoint = metrics["best_checkpoint"]
    outputs = run_outputs(datamodule, model, checkpoint, description.output_dir)
    record_outputs(run, description, outputs, metrics, selection)
    if checkpoint:
        uri = publish_trained_model(run, checkpoint, datamodule)
        run.set_tags({"model_uri": uri})
        if registry is not None:
            split = datamodule.split.name
            run.set_tags(_register(registry, run, uri, description, split, selection, metrics))
    metrics["mlflow_run_id"] = run.run_id


def _links(ui_url: str, run: Run, selection: Selection, metrics: dict) -> dict:
    """The run's name and UI links; the runs table sorted by the selection metric's best
    value, with the test metrics the result table shows as columns."""
    shown = [k for k in metrics if k.startswith("test/") and is_main_metric(k)]
    return run.links(ui_url, selection.best_key, selection.mode == "min", shown)


def _register(registry, run: Run, model_uri: str, description, split: str, selection, metrics):
    """Register the run's model (`registry.name`, default movierec-<dataset>-<model>) and
    move `registry.alias` when the selection metric beats the current holder's."""
    dataset = description.dataset
    name = registry.get("name") or f"movierec-{dataset}-{description.model}"
    return run.register(
        name, model_uri,
        metric=selection.metric, mode=selection.mode, value=metrics[selection.metric],
        dataset=dataset, split=split, alias=registry.get("alias") or CHAMPION,
    )  # fmt: skip


def cross_validate(cfg: DictConfig, selection: Selection, tracker: Tracker | None) -> float:
    """Run every fold of `cfg.split`; print each fold and mean ± std; return the mean of
    the folds' best `selection.metric`."""
    probe = build(OmegaConf.merge(cfg.split, {"fold": 1}), "split")
    base_dir = Path(cfg.paths.output_dir)
    parent = None
    if tracker is not None:
        description = describe_run(cfg)
        parent = open_cv_parent(tracker, description, probe.name, len(probe.folds), selection)
    with parent if parent is not None else nullcontext():
        summary = _run_folds(cfg, probe.folds, base_dir, tracker, parent, selection)
        if parent is not None:
            record_cv_summary(parent, summary, base_dir / "cv_metrics.json", selection)
    if rank_zero_only.rank == 0:
        links = {}
        if parent is not None:
            links = _links(str(cfg.mlflow_ui), parent, selection, summary)
        print("\n".join(summary_lines(summary, links)))
    return summary[selection.metric][0]


def _run_folds(
    cfg: DictConfig,
    folds: list[int],
    base_dir: Path,
    tracker: Tracker | None,
    parent: Run | None,
    selection: Selection,
) -> dict[str, tuple[float, float]]:
    rows = []
    for fold in folds:
        fold_cfg = cfg.copy()
        with open_dict(fold_cfg):
            fold_cfg.split.fold = fold
            fold_cfg.paths.output_dir = str(base_dir / f"fold{fold}")
        log.info("fold %d of %d", fold, len(folds))
        parent_run_id = parent.run_id if parent else None
        metrics = train_fold(fold_cfg, selection, tracker, parent_run_id, report=False)
        rows.append({"fold": fold, **metrics})
        if rank_zero_only.rank == 0:
            print(fold_line(fold, metrics, selection.metric))
    summary = {
        name: _mean_std([r[name] for r in rows])
        for name in _summary_metrics(rows[0], selection)
        if all(isinstance(r.get(name), (int, float)) for r in rows)
    }
    if rank_zero_only.rank == 0:
        _write_json(
            base_dir / "cv_metrics.json",
            {
                "folds": rows,
                "mean": {k: v[0] for k, v in summary.items()},
                "std": {k: v[1] for k, v in summary.items()},
            },
        )
    return summary


def _summary_metrics(row: dict[str, Any], selection: Selection) -> list[str]:
    """What a cross-validation summarizes: the selection metric, the chosen epoch's other
    validation metrics, then the test metrics (not the last epoch's `_last` values)."""
    names = [selection.metric]
    names += [k for k in row if k.startswith("val/") and not k.endswith("_last")]
    names += [k for k in row if k.startswith("test/")]
    return list(dict.fromkeys(names))


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)


def _mean_std(values: list[float]) -> tuple[float, float]:
    """The folds' mean and sample standard deviation (0 for one fold; NaN in, NaN out)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
