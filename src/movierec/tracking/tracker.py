"""The tracking seam: what the training task, the sweeper and serving ask of a tracker.

A `Tracker` opens runs (`RunRequest`: a name, tags, an optional parent or a run to
continue); a `Run` records params, tags, metrics and files, hands Lightning a logger for
the per-epoch curves, publishes the servable model and registers it. MLflow is the one
implementation (`movierec.tracking.mlflow_tracker`); a test trains with an in-memory one
(tests/test_tracker_seam.py). Every call of a run is made on rank 0 only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pytorch_lightning.loggers import Logger


@dataclass(frozen=True)
class RunRequest:
    """One run to open: its display name and tags, the parent run of a cross-validation
    fold or sweep trial, and the run to continue when resuming from a checkpoint."""

    name: str | None
    tags: dict[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    resume_run_id: str | None = None


@dataclass(frozen=True)
class ServableModel:
    """A model folder to publish: `bundle` (serving.bundle) answered by the file
    `entry_file` (a "model from code"), shipped with the package at `code_path`;
    `example` is a request it answered before publishing."""

    bundle: Path
    example: Any  # pandas.DataFrame
    entry_file: Path
    code_path: Path
    requirements: list[str]


class Run(Protocol):
    """One tracked run; a context manager that ends it FINISHED, FAILED or KILLED."""

    run_id: str

    def __enter__(self) -> Run: ...

    def __exit__(self, exc_type, exc, tb) -> None: ...

    def finish(self) -> None:
        """End the run FINISHED outside a `with` block (a study's run, shared by workers)."""
        ...

    def log_params(self, params: dict[str, str]) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None: ...

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None: ...

    def log_dataset(self, name: str, source: str, checksum: str) -> None: ...

    def metric_history(self, key: str) -> list[tuple[int, float]]: ...

    def epoch_logger(self) -> Logger:
        """The Lightning logger that writes the epochs' metrics into this run."""
        ...

    def publish_model(self, model: ServableModel) -> str:
        """Log the servable model on the run; its model URI."""
        ...

    def register(self, name: str, model_uri: str, **decision: Any) -> dict[str, str]: ...

    def links(self, ui_url: str, sort_by: str, ascending: bool, columns: list[str]) -> dict: ...


class Tracker(Protocol):
    """Where runs are kept (an MLflow store, a fake in memory)."""

    def open_run(self, request: RunRequest) -> Run: ...
