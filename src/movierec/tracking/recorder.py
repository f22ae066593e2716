"""Glue between the train task and its tracker: which run to open, and what to record in
it, from the typed values of `tracking.description` (the config is read only to find the
configured MLflow logger)."""

from __future__ import annotations

import logging
import secrets
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from movierec.redaction import redact
from movierec.tracking.description import RunDescription, RunOutputs, SplitSummary
from movierec.tracking.lifecycle import remember_run_id
from movierec.tracking.lineage import split_machine_paths
from movierec.tracking.mlflow_tracker import MlflowTracker
from movierec.tracking.params import compared_params, git_state, library_versions
from movierec.tracking.plots import plot_curves, plot_predictions
from movierec.tracking.preflight import check_tracking
from movierec.tracking.tracker import Run, RunRequest, Tracker
from movierec.training.selection import Selection

log = logging.getLogger(__name__)

MLFLOW_LOGGER_TARGET = "pytorch_lightning.loggers.MLFlowLogger"
LOSS_CURVES = ("train/loss_epoch",)


def mlflow_node(cfg: DictConfig) -> DictConfig | None:
    """The `logger.<name>` entry that is an MLFlowLogger, if any."""
    for node in (cfg.get("logger") or {}).values():
        if node and node.get("_target_") in (
            MLFLOW_LOGGER_TARGET,
            "lightning.pytorch.loggers.MLFlowLogger",
        ):
            return node
    return None


def run_name_for(picked: dict[str, str], model: str, where: str, seed: int) -> str:
    """`<experiment or model>-<dataset and split>-seed<n>-<6 hex>`: what differs between
    runs, and a random 6-hex suffix that keeps two runs started together apart."""
    experiment = picked.get("experiment")
    label = experiment if experiment not in (None, "None", "null") else model
    return f"{label}-{where}-seed{seed}-{secrets.token_hex(3)}"


def tracker_for(cfg: DictConfig) -> Tracker | None:
    """The tracker of the configured MLflow logger (`logger.mlflow`), its store checked
    first (an unreachable or unwritable one: one line, before any data); None without
    one and on every DDP rank but 0 (they record nothing)."""
    node = mlflow_node(cfg)
    if node is None or rank_zero_only.rank != 0:
        return None
    check_tracking(node)
    return MlflowTracker.from_logger(node)


def open_run(
    tracker: Tracker,
    description: RunDescription,
    split: SplitSummary,
    selection: Selection,
    *,
    parent_run_id: str | None = None,
    resume_run_id: str | None = None,
) -> Run:
    """Open (or continue `resume_run_id`) this training's run, a child of `parent_run_id`
    (a cross-validation fold) or of the sweep's study run (a trial): tags, the compared
    params, the split's sizes and the ratings as its dataset input."""
    tags = {
        "model": description.model,
        "dataset": description.dataset,
        "split": split.name,
        "fold": str(split.fold if split.fold is not None else "-"),
        "seed": str(description.seed),
        "data.checksum": split.checksum,
        "device": description.device,
        **git_state(Path(description.root_dir)),
        **library_versions(),
        **{f"choice.{k}": v for k, v in description.choices.items()},
        **selection.as_tags(),
        **description.trial_tags(),
    }
    if description.tags:
        tags["tags"] = ",".join(description.tags)
    parent = parent_run_id or description.study_run_id
    name = _run_name(description, split)
    run = tracker.open_run(RunRequest(name, tags, parent, resume_run_id))
    try:
        remember_run_id(description.output_dir, run.run_id)
        log_config(run, description)
        run.set_tags({f"split.{k}": v for k, v in split.sizes.items()})
        if split.checksum:
            source = split.source or description.dataset
            run.log_dataset(description.dataset, source, split.checksum)
        if description.overrides:  # they may hold machine paths: a tag, not params
            run.set_tags({"overrides": " ".join(description.overrides)[:6000]})
    except BaseException as err:  # the run exists: it ends FAILED, not RUNNING
        run.__exit__(type(err), err, err.__traceback__)
        raise
    return run


def _run_name(description: RunDescription, split: SplitSummary) -> str:
    if description.trial is not None:  # sweep trials apart at a glance
        return f"trial-{description.trial} {description.model} {description.dataset}"
    where = f"{description.dataset}-{split.label}"
    return run_name_for(description.choices, description.model, where, description.seed)


def log_config(run: Run, description: RunDescription) -> None:
    """The hyperparameters as params (`compared_params`), machine-specific paths as tags;
    the whole resolved config is the `config.yaml` artifact (`record_outputs`)."""
    params, paths = split_machine_paths(description.params)
    run.log_params(compared_params(params))
    run.set_tags(paths)


def record_outputs(
    run: Run,
    description: RunDescription,
    outputs: RunOutputs,
    metrics: dict[str, Any],
    selection: Selection,
) -> None:
    """Summary metrics, config, ID maps, plots and the best checkpoint (the servable
    model is published by `serving.pyfunc.publish_trained_model`)."""
    numeric = {
        k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "parameters"
    }
    # val/* and test/* histories come from the Lightning logger; the best epoch's value
    # of the selection metric (what sweeps optimize) gets its own name, <metric>_best, so
    # it does not extend that history.
    summary = {f"summary/{k}": v for k, v in numeric.items() if "/" not in k}
    summary[selection.best_key] = numeric[selection.metric]
    run.log_metrics(summary)
    run.set_tags({"parameters": str(metrics.get("parameters", ""))})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "config.yaml").write_text(redact(description.config_yaml))
        run.log_artifact(folder / "config.yaml")
        maps = folder / "id_maps"
        maps.mkdir()
        outputs.users.rename_axis("user_index").to_csv(maps / "users.csv")
        outputs.movies.rename_axis("movie_index").to_csv(maps / "movies.csv")
        run.log_artifact(maps, "id_maps")
        history = {key: run.metric_history(key) for key in (*LOSS_CURVES, *outputs.curves)}
        run.log_artifact(plot_curves(history, folder / "curves.png"), "plots")
        if outputs.test_ratings is not None:
            true, predicted = outputs.test_ratings
            plot = folder / "predicted_vs_true.png"
            run.log_artifact(plot_predictions(true, predicted, outputs.rating_scale, plot), "plots")
        if outputs.checkpoint:
            run.log_artifact(outputs.checkpoint, "checkpoints")
    if outputs.per_user.exists():
        run.log_artifact(outputs.per_user)


def open_cv_parent(
    tracker: Tracker, description: RunDescription, split_name: str, n_folds: int,
    selection: Selection,
) -> Run:  # fmt: skip
    """The parent run of a cross-validation command; folds become its children."""
    where = f"{description.dataset}-{split_name}-cv{n_folds}"
    label = run_name_for(description.choices, description.model, where, description.seed)
    tags = {
        "model": description.model,
        "dataset": description.dataset,
        "split": split_name,
        "fold": "all",
        "seed": str(description.seed),
        "cv.folds": str(n_folds),
        **selection.as_tags(),
        **git_state(Path(description.root_dir)),
        **library_versions(),
    }
    run = tracker.open_run(RunRequest(label, tags))
    log_config(run, description)
    return run


def record_cv_summary(
    run: Run, summary: dict[str, tuple[float, float]], path: Path, selection: Selection
) -> None:
    """Mean (under the fold metrics' own names) and std (`<name>_std`) on the parent run,
    and the folds' mean best selection metric as `<metric>_best`."""
    metrics = {}
    for name, (mean, std) in summary.items():
        metrics[name] = mean
        metrics[f"{name}_std"] = std
    if selection.metric in summary:
        metrics[selection.best_key] = summary[selection.metric][0]
    run.log_metrics(metrics)
    if path.is_file():
        run.log_artifact(path)
