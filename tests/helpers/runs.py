"""Reading back what trainings logged to an MLflow store."""

from __future__ import annotations

from mlflow.entities import Run
from mlflow.tracking import MlflowClient


def all_runs(client: MlflowClient, filter_string: str = "") -> list[Run]:
    """Every run of every experiment in the client's store (none before the store has one)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=filter_string) if experiments else []
