"""Glue between the train task and MLflow: which run to open, and what to record in it."""

from __future__ import annotations

import logging
import secrets
import tempfile
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from movierec.ranking.significance import PER_USER_FILE
from movierec.redaction import redact
from movierec.tracking.lifecycle import remember_run_id, run_id_for_checkpoint
from movierec.tracking.lineage import split_machine_paths
from movierec.tracking.mlflow_tracker import MlflowTracker
from movierec.tracking.params import (
    compared_params,
    flatten_config,
    git_state,
    library_versions,
)
from movierec.tracking.plots import plot_curves, plot_predictions
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


def choices(cfg: DictConfig) -> dict[str, str]:
    """Config-group choices (model=sage, data=ml_100k, …) of the composed config."""
    try:
        runtime = HydraConfig.get().runtime.choices
    except ValueError:
        runtime = cfg.get("hydra", {}).get("runtime", {}).get("choices", {})
    return {k: str(v) for k, v in dict(runtime or {}).items() if "hydra/" not in k}


def model_name(cfg: DictConfig) -> str:
    """The model's name as the user chose it (model=sage), else its network class."""
    return choices(cfg).get("model", str(cfg.model.net._target_).rsplit(".", 1)[-1])


def run_name_for(picked: dict[str, str], model: str, where: str, seed: int) -> str:
    """`<experiment or model>-<dataset and split>-seed<n>-<6 hex>`: what differs between
    runs, and a random 6-hex suffix that keeps two runs started together apart."""
    experiment = picked.get("experiment")
    label = experiment if experiment not in (None, "None", "null") else model
    return f"{label}-{where}-seed{seed}-{secrets.token_hex(3)}"


def tracker_for(cfg: DictConfig) -> Tracker | None:
    """The tracker of the configured MLflow logger (`logger.mlflow`); None without one and
    on every DDP rank but 0 (they record nothing)."""
    node = mlflow_node(cfg)
    if node is None or rank_zero_only.rank != 0:
        return None
    return MlflowTracker.from_logger(node)


def open_run(
    tracker: Tracker,
    cfg: DictConfig,
    datamodule,
    selection: Selection,
    *,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> Run:
    """Open (or, when resuming from a checkpoint, reopen) this training's run: tags, the
    compared params, the split's sizes and the ratings as its dataset input."""
    picked = choices(cfg)
    split = datamodule.split
    tags = {
        "model": model_name(cfg),
        "dataset": datamodule.settings.name,
        "split": split.name,
        "fold": str(split.fold if split.fold is not None else "-"),
        "seed": str(cfg.seed),
        "data.checksum": datamodule.data.meta.get("source_checksum", "") if datamodule.data else "",
        "device": _device(cfg),
        **git_state(Path(cfg.paths.root_dir)),
        **library_versions(),
        **{f"choice.{k}": v for k, v in picked.items()},
        **selection.as_tags(),
        **(extra_tags or {}),
    }
    if cfg.get("tags"):
        tags["tags"] = ",".join(str(t) for t in cfg.get("tags") or [])
    trial = (cfg.get("sweep") or {}).get("trial")
    name = (
        f"trial-{trial} {tags['model']} {tags['dataset']}"  # sweep trials apart at a glance
        if trial is not None
        else run_name_for(picked, tags["model"], f"{tags['dataset']}-{split.describe()}", cfg.seed)
    )
    resume = run_id_for_checkpoint(cfg.get("ckpt_path"))
    run = tracker.open_run(RunRequest(name, tags, parent_run_id, resume))
    remember_run_id(cfg.paths.output_dir, run.run_id)
    log_config(run, cfg)
    _log_data(run, datamodule)
    overrides = _overrides()
    if overrides:
        run.set_tags({"overrides": " ".join(overrides)[:6000]})  # may hold machine paths
    return run


def _log_data(run: Run, datamodule) -> None:
    """The split's sizes and cold-start counts (tags) and the ratings as a dataset input."""
    if datamodule.indices is not None:
        indices = datamodule.indices
        run.set_tags(
            {f"split.{k}": str(v) for k, v in {**indices.sizes(), **indices.report}.items()}
        )
    meta = datamodule.data.meta if datamodule.data is not None else {}
    if meta.get("source_checksum"):
        source = str(meta.get("source") or datamodule.settings.name)
        run.log_dataset(datamodule.settings.name, source, meta["source_checksum"])


def log_config(run: Run, cfg: DictConfig) -> None:
    """The hyperparameters as params (`compared_params`), machine-specific paths as tags;
    the whole resolved config is the `config.yaml` artifact."""
    params, paths = split_machine_paths(flatten_config(cfg))
    run.log_params(compared_params(params))
    run.set_tags(paths)


def record_outputs(
    run: Run,
    cfg: DictConfig,
    datamodule,
    model,
    checkpoint_path: str,
    metrics: dict[str, Any],
    selection: Selection,
) -> None:
    """Summary metrics, config, ID maps, plots and the best checkpoint (the servable
    model is logged by `movierec.tracking.pyfunc_model.log_pyfunc_model`)."""
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
        (folder / "config.yaml").write_text(redact(OmegaConf.to_yaml(cfg, resolve=True)))
        run.log_artifact(folder / "config.yaml")
        maps = folder / "id_maps"
        maps.mkdir()
        data = datamodule.data
        data.users.rename_axis("user_index").to_csv(maps / "users.csv")
        data.movies.rename_axis("movie_index").to_csv(maps / "movies.csv")
        run.log_artifact(maps, "id_maps")
        curves = (*LOSS_CURVES, *model.validation_metrics())
        history = {key: run.metric_history(key) for key in curves}
        run.log_artifact(plot_curves(history, folder / "curves.png"), "plots")
        user, movie, rating = datamodule.split_data.rows("test")
        if len(rating) and model.net.predicts_ratings:
            predicted = model.predict_pairs(user.to(model.device), movie.to(model.device)).cpu()
            run.log_artifact(
                plot_predictions(
                    rating.numpy(),
                    predicted.numpy(),
                    datamodule.rating_scale,
                    folder / "predicted_vs_true.png",
                ),
                "plots",
            )
        if checkpoint_path:
            run.log_artifact(checkpoint_path, "checkpoints")
    per_user = Path(cfg.paths.output_dir) / PER_USER_FILE
    if per_user.exists():
        run.log_artifact(per_user)


def _overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def _device(cfg: DictConfig) -> str:
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{accelerator} ({torch.get_num_threads()} threads)"


def open_cv_parent(
    tracker: Tracker, cfg: DictConfig, split_name: str, n_folds: int, selection: Selection
) -> Run:
    """The parent run of a cross-validation command; folds become its children."""
    picked = choices(cfg)
    model = model_name(cfg)
    dataset = picked.get("data", str(cfg.data.name))
    label = run_name_for(picked, model, f"{dataset}-{split_name}-cv{n_folds}", cfg.seed)
    request = RunRequest(
        label,
        {
            "model": model,
            "dataset": dataset,
            "split": split_name,
            "fold": "all",
            "seed": str(cfg.seed),
            "cv.folds": str(n_folds),
            **selection.as_tags(),
            **git_state(Path(cfg.paths.root_dir)),
            **library_versions(),
        },
    )
    run = tracker.open_run(request)
    log_config(run, cfg)
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
