"""What a run records about itself: the flattened config, overrides and provenance tags."""

from __future__ import annotations

import contextlib
import platform
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from movierec.config import RUN_DECLARATION

# MLflow 3 stores param values up to 6000 characters; longer ones are cut with a marker
# (the whole config is also logged as config.yaml).
MAX_PARAM_LENGTH = 6000
TRUNCATION_MARK = "…[truncated]"


def flatten_config(cfg: DictConfig) -> dict[str, str]:
    """Resolved config as {"model.net.hidden": "64", ...}, without Hydra's own node.

    A value that cannot be resolved here (e.g. a run folder that only exists inside a
    sweep job) is recorded as written, interpolation and all.
    """
    try:
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        resolved = True
    except Exception:
        container = OmegaConf.to_container(cfg, resolve=False)
        resolved = False
    assert isinstance(container, dict)
    flat = flatten_settings(container)
    if not resolved:
        for key, raw in flat.items():
            if "${" in raw:
                with contextlib.suppress(Exception):  # else keep the interpolation text
                    flat[key] = _clip(str(OmegaConf.select(cfg, key)))
    return flat


def flatten_settings(settings: dict[str, Any]) -> dict[str, str]:
    """A config's plain container as {"model.net.hidden": "64", ...} (values clipped to
    what MLflow keeps), without Hydra's own node."""
    flat: dict[str, str] = {}
    _flatten("", {k: v for k, v in settings.items() if k != "hydra"}, flat)
    return flat


#: settings outside `model` that a researcher compares between runs; every other setting
#: is in the run's config.yaml artifact, and the split's sizes and paths are tags
COMPARED_SETTINGS = (
    "seed", "data.batch_size", "data.user_features", "trainer.max_epochs",
    "callbacks.early_stopping.patience",
)  # fmt: skip
#: bookkeeping keys of the model node (its class is the run's `model` tag)
MODEL_BOOKKEEPING = ("model._target_", "model._recursive_", "model.net._target_")
#: the model's run declaration (conf/model/*.yaml `fit`): logged as the keys it sets
RUN_DECLARATION_PREFIX = f"model.{RUN_DECLARATION}."


def compared_params(flat: dict[str, str]) -> dict[str, str]:
    """The hyperparameters of a flattened config (`flatten_config`): the model's keys and
    `COMPARED_SETTINGS`, about 20–40 of them."""
    return {
        key: value
        for key, value in flat.items()
        if (key.startswith("model.") and not _bookkeeping(key)) or key in COMPARED_SETTINGS
    }


def _bookkeeping(key: str) -> bool:
    return key in MODEL_BOOKKEEPING or key.startswith(RUN_DECLARATION_PREFIX)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
        return
    out[prefix] = _clip(str(value))


def _clip(text: str) -> str:
    if len(text) > MAX_PARAM_LENGTH:
        return text[: MAX_PARAM_LENGTH - len(TRUNCATION_MARK)] + TRUNCATION_MARK
    return text


def git_state(root: Path) -> dict[str, str]:
    """Commit hash and whether the work tree has uncommitted changes ("unknown" outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    return {
        "git.commit": commit,
        "git.dirty": str(bool(dirty)).lower(),
        "mlflow.source.git.commit": commit,
    }


def library_versions() -> dict[str, str]:
    import pytorch_lightning
    import torch
    import torch_geometric

    return {
        "versions.python": platform.python_version(),
        "versions.torch": torch.__version__,
        "versions.torch_geometric": torch_geometric.__version__,
        "versions.pytorch_lightning": pytorch_lightning.__version__,
    }
