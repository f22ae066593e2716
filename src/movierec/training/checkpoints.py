"""Reading a Lightning checkpoint safely: `torch.load(weights_only=True)`, and a damaged or
foreign file reported in one line that names it.

A checkpoint holds tensors and plain containers only (`RatingPredictor` saves its
hyperparameters as plain dicts), so every load in the project restricts unpickling to
those (`weights_only=True`): a checkpoint from elsewhere cannot run code when loaded.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from movierec.errors import DataError
from movierec.training.former_layouts import current_identity, grouped_arguments

#: where a checkpoint records the training that wrote it (`callbacks.CheckpointRecord`)
RECORD_KEY = "movierec_run"
#: what torch raises for a truncated, empty or non-checkpoint file
UNREADABLE = (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError,
              zipfile.BadZipFile)  # fmt: skip


def read_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint's contents on CPU; `DataError` for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{key}={path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE as err:
        raise unreadable_checkpoint(path, key, err) from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise DataError(
            f"{key}={path}: not a Lightning checkpoint (it has no state_dict); pass a "
            "checkpoint this project wrote, e.g. <run dir>/checkpoints/last.ckpt"
        )
    return payload


def checkpoint_epoch(path: str | Path | None, key: str = "ckpt_path") -> int:
    """The epoch stored in a checkpoint (-1 without one)."""
    if not path:
        return -1
    return int(read_checkpoint(path, key).get("epoch", -1))


def read_record(path: str | Path, key: str = "ckpt_path") -> tuple[dict[str, Any] | None, int]:
    """The record of the training that wrote the checkpoint at `path` (its run id, seed and
    settings, read in today's layout; None in a checkpoint that has none) and its epoch."""
    checkpoint = read_checkpoint(path, key)
    record = checkpoint.get(RECORD_KEY)
    if record is not None:
        record = {**record, "config": current_identity(record.get("config", {}))}
    return record, int(checkpoint.get("epoch", -1))


def unreadable_checkpoint(path: Path, key: str, err: BaseException) -> DataError:
    reason = " ".join(str(err).split())[:200] or type(err).__name__
    size = path.stat().st_size if path.exists() else 0
    return DataError(
        f"{key}={path}: cannot read the checkpoint ({size:,} bytes; {reason}); the file is "
        "damaged or truncated (e.g. a copy cut short): use an intact checkpoint such as "
        "<run dir>/checkpoints/last.ckpt, or start without ckpt_path"
    )


def load_predictor(path: str | Path, key: str = "ckpt_path"):
    """The `RatingPredictor` saved at `path`, on CPU, its file checked first; a checkpoint
    of a former layout is read as today's (`former_layouts`)."""
    from movierec.training.module import RatingPredictor  # the module imports this file's peers

    hparams = read_checkpoint(path, key).get("hyper_parameters") or {}
    moved = grouped_arguments(hparams)
    try:
        return RatingPredictor.load_from_checkpoint(
            path, map_location="cpu", weights_only=True, **moved
        )
    except UNREADABLE as err:
        raise unreadable_checkpoint(Path(path), key, err) from None
