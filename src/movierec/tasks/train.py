"""The train task: compose data, model, callbacks, logger and trainer; fit, test, report.

`train(cfg)` returns the metric a sweep optimizes: the best epoch's value of
`selection.metric` (the mean over folds for `split.fold=all`), never a test metric.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from movierec.config import build
from movierec.data.datamodule import MovieLensDataModule
from movierec.ranking.significance import PER_USER_FILE, write_per_user
from movierec.serving.pyfunc import publish_trained_model
from movierec.tasks.result_table import fold_line, is_main_metric, result_lines, summary_lines
from movierec.tracking.lifecycle import TrackedRun
from movierec.tracking.links import run_links
from movierec.tracking.preflight import check_tracking
from movierec.tracking.recorder import (
    choices,
    mlflow_node,
    open_cv_parent,
    open_run,
    record_cv_summary,
    record_outputs,
)
from movierec.tracking.registry import CHAMPION, register_model
from movierec.tracking.resume import RunRecord, check_resume, run_record
from movierec.training.callbacks import EpochTimer, ValidationHistory
from movierec.training.checkpoints import checkpoint_epoch
from movierec.training.distributed import claim_rank_from_environment, local_rank
from movierec.training.module import RatingPredictor
from movierec.training.selection import Selection
from movierec.tuning.pruning import optuna_pruning

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float:
    """Train one split, or every fold when `split.fold=all`; return the best epoch's
    `selection.metric` (the mean over folds)."""
    selection = Selection.from_cfg(cfg)
    claim_rank_from_environment(cfg.trainer.get("devices"))
    check_tracking(cfg)  # an unreachable or unwritable store: one line, before any data
    try:
        if cfg.split.get("fold") == "all":
            return cross_validate(cfg)
        return float(train_fold(cfg)[selection.metric])
    except SIGTERMException:
        # Lightning stops cleanly after the current batch but exits with status 0;
        # a killed job must not look like a finished one to a shell or a scheduler.
        raise _stopped_by(signal.SIGTERM, cfg) from None


def _stopped_by(signum: signal.Signals, cfg: DictConfig) -> SystemExit:
    """Log how to resume a training `signum` stopped; the exit that says it was stopped."""
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.warning("stopped by %s; resume with ckpt_path=%s", signum.name, last)
    else:
        log.warning("stopped by %s before the first checkpoint; nothing to resume", signum.name)
    return SystemExit(128 + signum)


def train_fold(
    cfg: DictConfig, parent_run_id: str | None = None, *, report: bool = True
) -> dict[str, Any]:
    """Fit on one split, test the best checkpoint, write `metrics.json`; return the metrics.

    With an MLflow logger the training is one MLflow run (a child of `parent_run_id` for a
    cross-validation fold); it ends FINISHED, FAILED or KILLED whatever happens. A
    `selection` the run cannot follow is refused before any run or training starts.
    """
    selection = Selection.from_cfg(cfg)
    selection.check_monitors(cfg.get("callbacks"))
    check_resume(cfg)  # a checkpoint of another run, seed or config: refused before the data
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: MovieLensDataModule = build(cfg.data, "data", split=cfg.split)
    if local_rank() == 0:
        # Lightning calls prepare_data inside fit, but the model's layer sizes come from
        # the data, so the node's first process prepares it before anything is built.
        datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.release_ratings_table()
    model: RatingPredictor = build(
        cfg.model, "model", schema=datamodule.schema.as_dict(), **_ranking_settings(cfg)
    )
    selection.check(model.validation_metrics())
    resumed_from = _checkpoint_epoch(cfg.get("ckpt_path"))
    sweep = cfg.get("sweep") or {}
    trial_tags = {}
    if sweep.get("trial") is not None:
        trial_tags = {"optuna.study": str(sweep.get("study")), "optuna.trial": str(sweep.trial)}
    run = open_run(
        cfg,
        datamodule,
        parent_run_id=parent_run_id or sweep.get("parent_run_id"),
        extra_tags=trial_tags,
    )
    links: dict[str, str] = {}
    with run if run is not None else nullcontext():
        metrics = _fit_and_test(cfg, datamodule, model, run, resumed_from, selection)
        if run is not None:
            checkpoint = metrics["best_checkpoint"]
            record_outputs(run, cfg, datamodule, model, checkpoint, metrics)
            if checkpoint:
                uri = publish_trained_model(
                    run.run_id, run.client.tracking_uri, checkpoint, datamodule
                )
                run.set_tags({"model_uri": uri})
                if cfg.get("register"):
                    run.set_tags(_register(cfg, run, uri, datamodule, selection, metrics))
            metrics["mlflow_run_id"] = run.run_id
            links = _links(cfg, run, selection, metrics)
    if rank_zero_only.rank == 0:
        _write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
        if report:
            print("\n".join(result_lines(metrics, links)))
    return metrics


def _links(cfg: DictConfig, run: TrackedRun, selection: Selection, metrics: dict) -> dict:
    """The run's name and UI links; the runs table sorted by the selection metric's best
    value, with the test metrics the result table shows as columns."""
    shown = [k for k in metrics if k.startswith("test/") and is_main_metric(k)]
    ui_url = str(cfg.get("mlflow_ui") or "http://127.0.0.1:5000")
    return run_links(
        run.client, run.run_id, ui_url, selection.best_key, selection.mode == "min", shown
    )


def _register(cfg, run: TrackedRun, model_uri: str, datamodule, selection, metrics) -> dict:
    """Register the run's model (`registry.name`, default movierec-<dataset>-<model>) and
    move `registry.alias` when the selection metric beats the current holder's."""
    registry = cfg.get("registry") or {}
    model = choices(cfg).get("model", str(cfg.model.net._target_).rsplit(".", 1)[-1])
    name = registry.get("name") or f"movierec-{datamodule.settings.name}-{model}"
    return register_model(
        run.client, name, model_uri, run.run_id,
        metric=selection.metric, mode=selection.mode, value=metrics[selection.metric],
        dataset=datamodule.settings.name, split=datamodule.split.name,
        alias=registry.get("alias") or CHAMPION,
    )  # fmt: skip


def _fit_and_test(
    cfg: DictConfig,
    datamodule: MovieLensDataModule,
    model: RatingPredictor,
    run: TrackedRun | None,
    resumed_from: int,
    selection: Selection,
) -> dict[str, Any]:
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if not node:
            continue
        if node is mlflow_node(cfg):
            # metrics go to the run opened above (None on DDP ranks > 0: they log nothing)
            loggers.append(build(node, f"logger.{name}", run_id=run.run_id if run else None))
        else:
            loggers.append(build(node, f"logger.{name}"))
    callbacks = [build(node, f"callbacks.{name}") for name, node in cfg.callbacks.items() if node]
    if not loggers:  # LearningRateMonitor refuses to run without a logger to write to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not cfg.trainer.get("enable_progress_bar", True):  # the Trainer refuses both at once
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    callbacks.append(EpochTimer())
    callbacks.append(RunRecord(run_record(cfg, run.run_id if run else None)))
    history = ValidationHistory()
    callbacks.append(history)
    pruning = optuna_pruning(cfg)
    if pruning is not None:
        callbacks.append(pruning)
    trainer: pl.Trainer = build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False
    )

    started = time.perf_counter()
    # weights_only: a checkpoint holds tensors and plain containers (training.checkpoints)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    except SystemExit:  # Lightning's answer to Ctrl-C (SIGINT): teardown, then exit(1)
        if trainer.interrupted:
            raise _stopped_by(signal.SIGINT, cfg) from None
        raise
    fit_seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise KeyboardInterrupt
    checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    logged = model.validation_metrics()
    best_epoch, chosen = _chosen_epoch(selection, checkpoint, history)
    # the selection metric first, then the chosen epoch's other validation metrics (the
    # benchmark reads val/rmse), then the last epoch's as <name>_last
    metrics: dict[str, Any] = {
        selection.metric: chosen.get(selection.metric, math.nan),
        **{name: chosen.get(name, math.nan) for name in logged},
    }
    last = {
        f"{name}_last": float(trainer.callback_metrics[name])
        if name in trainer.callback_metrics
        else math.nan
        for name in logged
    }
    if cfg.get("test", True):
        ckpt = "best" if checkpoint is not None and checkpoint.best_model_path else None
        results = trainer.test(
            model, datamodule=datamodule, ckpt_path=ckpt, verbose=False, weights_only=True
        )
        metrics.update({k: float(v) for k, v in results[0].items()})
        if rank_zero_only.rank == 0:
            user_ids = datamodule.data.users["userId"].to_numpy()
            per_user = Path(cfg.paths.output_dir) / PER_USER_FILE
            write_per_user(model.test_ranking, user_ids, per_user)
    timer = next(c for c in callbacks if isinstance(c, EpochTimer))
    metrics.update(
        {
            **last,
            "selection": selection.describe(),
            "epochs": trainer.current_epoch,
            "resumed_from_epoch": resumed_from,
            "epochs_this_run": len(timer.durations),
            "best_epoch": best_epoch,
            "fit_seconds": fit_seconds,
            "seconds_per_epoch": _mean(timer.durations),
            # the first epoch also builds caches (adjacency); the last is the steady state
            "last_epoch_seconds": timer.durations[-1] if timer.durations else math.nan,
            "parameters": sum(p.numel() for p in model.parameters()),
            "peak_rss_mb": _peak_rss_mb(),
            # the accelerator's peak, where there is one (None on CPU)
            "peak_gpu_mb": (
                torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
            ),
            "best_checkpoint": checkpoint.best_model_path if checkpoint else "",
        }
    )
    return metrics


def cross_validate(cfg: DictConfig) -> float:
    """Run every fold of `cfg.split`; print each fold and mean ± std; return the mean of
    the folds' best `selection.metric`."""
    selection = Selection.from_cfg(cfg)
    selection.check_monitors(cfg.get("callbacks"))
    probe = build(OmegaConf.merge(cfg.split, {"fold": 1}), "split")
    base_dir = Path(cfg.paths.output_dir)
    parent = open_cv_parent(cfg, probe.name, len(probe.folds))
    with parent if parent is not None else nullcontext():
        summary = _run_folds(cfg, probe.folds, base_dir, parent, selection)
        if parent is not None:
            record_cv_summary(parent, summary, base_dir / "cv_metrics.json", selection)
    if rank_zero_only.rank == 0:
        links = _links(cfg, parent, selection, summary) if parent is not None else {}
        print("\n".join(summary_lines(summary, links)))
    return summary[selection.metric][0]


def _run_folds(
    cfg: DictConfig,
    folds: list[int],
    base_dir: Path,
    parent: TrackedRun | None,
    selection: Selection,
) -> dict[str, tuple[float, float]]:
    rows = []
    for fold in folds:
        fold_cfg = cfg.copy()
        with open_dict(fold_cfg):
            fold_cfg.split.fold = fold
            fold_cfg.paths.output_dir = str(base_dir / f"fold{fold}")
        log.info("fold %d of %d", fold, len(folds))
        metrics = train_fold(
            fold_cfg, parent_run_id=parent.run_id if parent else None, report=False
        )
        rows.append({"fold": fold, **metrics})
        if rank_zero_only.rank == 0:
            print(fold_line(fold, metrics, selection.metric))
    summary = {
        name: (_mean([r[name] for r in rows]), _std([r[name] for r in rows]))
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


def _ranking_settings(cfg: DictConfig) -> dict[str, Any]:
    ranking = cfg.get("ranking") or {}
    selection = cfg.get("selection") or {}
    settings = {
        "ranking_k": ranking.get("k"),
        "relevant_rating": ranking.get("relevant_rating"),
        "validate_ranking": ranking.get("validate"),
        "validation_users": ranking.get("val_users"),
        # the plateau scheduler watches the selection metric
        "selection_metric": selection.get("metric"),
        "selection_mode": selection.get("mode"),
    }
    return {k: v for k, v in settings.items() if v is not None}


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)


def _chosen_epoch(
    selection: Selection, checkpoint: ModelCheckpoint | None, history: ValidationHistory
) -> tuple[int, dict[str, float]]:
    """The epoch `selection` picked (-1: none) and its validation metrics.

    With a best checkpoint, its epoch and score (they survive a resume, which the
    per-epoch history of this process does not); else the best epoch of the history.
    """
    if checkpoint is not None and checkpoint.best_model_path:
        epoch = _checkpoint_epoch(checkpoint.best_model_path)
        values = dict(history.history.get(epoch, {}))
        if checkpoint.best_model_score is not None:
            values[selection.metric] = float(checkpoint.best_model_score)
        return epoch, values
    epoch = selection.best_epoch(history.history)
    return epoch, dict(history.history.get(epoch, {}))


def _checkpoint_epoch(path: str | None) -> int:
    """Epoch stored in a Lightning checkpoint (-1 without one); names a missing file."""
    return checkpoint_epoch(path)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
