"""`MlflowTracker`: the MLflow implementation of `tracking.tracker.Tracker`, one store
(tracking URI) and one experiment; its runs are `tracking.lifecycle.TrackedRun`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from movierec.tracking.lifecycle import TrackedRun
from movierec.tracking.tracker import RunRequest

#: the MLFlowLogger settings a tracker owns (the rest go to each run's epoch logger)
_STORE_KEYS = ("_target_", "tracking_uri", "experiment_name", "artifact_location")
_RUN_KEYS = ("run_name", "run_id", "tags")


@dataclass(frozen=True)
class MlflowTracker:
    """Runs of the experiment `experiment_name` in the store at `tracking_uri`
    (`artifact_location`: a new experiment's artifact root). `logger_options`: further
    `MLFlowLogger` settings of the epoch loggers (log_model, prefix, …)."""

    tracking_uri: str
    experiment_name: str
    artifact_location: str | None = None
    logger_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_logger(cls, node: Mapping[str, Any]) -> MlflowTracker:
        """The tracker of a `logger.mlflow` entry (an MLFlowLogger's settings)."""
        options = {k: v for k, v in node.items() if k not in (*_STORE_KEYS, *_RUN_KEYS)}
        return cls(
            str(node["tracking_uri"]),
            str(node["experiment_name"]),
            node.get("artifact_location"),
            options,
        )

    def open_run(self, request: RunRequest) -> TrackedRun:
        run = TrackedRun.open(
            self.tracking_uri,
            self.experiment_name,
            artifact_root=self.artifact_location,
            run_name=request.name,
            tags=request.tags,
            parent_run_id=request.parent_run_id,
            resume_run_id=request.resume_run_id,
        )
        run.logger_options = dict(self.logger_options)
        return run

    def find_run(self, tags: dict[str, str]) -> str | None:
        """Id of a run of the experiment carrying all `tags` (None if there is none)."""
        return TrackedRun.find(
            self.tracking_uri, self.experiment_name, tags, self.artifact_location
        )
