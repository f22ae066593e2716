"""The typed values the train task hands its tracker (`tracking.description`), read once
from the composed config, the prepared data and the trained module."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from movierec.ranking.significance import PER_USER_FILE
from movierec.tracking.description import RunDescription, RunOutputs, SplitSummary


def describe_run(cfg: DictConfig) -> RunDescription:
    """The run's names, choices and resolved config."""
    picked = choices(cfg)
    sweep = cfg.get("sweep") or {}
    return RunDescription(
        model=picked.get("model", str(cfg.model.net._target_).rsplit(".", 1)[-1]),
        dataset=str(cfg.data.name),
        seed=int(cfg.seed),
        choices=picked,
        config=OmegaConf.to_container(cfg, resolve=True),
        root_dir=str(cfg.paths.root_dir),
        output_dir=str(cfg.paths.output_dir),
        device=_device(str(cfg.trainer.get("accelerator", "cpu"))),
        tags=tuple(str(t) for t in cfg.get("tags") or []),
        trial=sweep.get("trial"),
        study=sweep.get("study"),
        study_run_id=sweep.get("parent_run_id"),
        overrides=tuple(_overrides()),
    )


def summarize_split(datamodule) -> SplitSummary:
    """The prepared datamodule's split, sizes and ratings source."""
    split, indices = datamodule.split, datamodule.indices
    sizes = {**indices.sizes(), **indices.report} if indices is not None else {}
    meta = datamodule.data.meta if datamodule.data is not None else {}
    return SplitSummary(
        name=split.name,
        fold=split.fold,
        label=split.describe(),
        sizes={k: str(v) for k, v in sizes.items()},
        source=str(meta.get("source") or ""),
        checksum=str(meta.get("source_checksum") or ""),
    )


def run_outputs(datamodule, model, checkpoint: str, output_dir: str) -> RunOutputs:
    """The ID maps, curves, test predictions and files of a trained `model`."""
    test_ratings = None
    user, movie, rating = datamodule.split_data.rows("test")
    model.eval()  # as tested (no dropout): Lightning leaves it training after the test
    if len(rating) and model.net.predicts_ratings:
        predicted = model.predict_pairs(user.to(model.device), movie.to(model.device)).cpu()
        test_ratings = (rating.numpy(), predicted.numpy())
    return RunOutputs(
        users=datamodule.data.users,
        movies=datamodule.data.movies,
        curves=tuple(model.validation_metrics()),
        checkpoint=checkpoint,
        per_user=Path(output_dir) / PER_USER_FILE,
        test_ratings=test_ratings,
        rating_scale=tuple(datamodule.rating_scale),
    )


def choices(cfg: DictConfig) -> dict[str, str]:
    """Config-group choices (model=sage, data=ml_100k, …) of the composed config."""
    try:
        runtime = HydraConfig.get().runtime.choices
    except ValueError:
        runtime = cfg.get("hydra", {}).get("runtime", {}).get("choices", {})
    return {k: str(v) for k, v in dict(runtime or {}).items() if "hydra/" not in k}


def _overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def _device(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{accelerator} ({torch.get_num_threads()} threads)"
