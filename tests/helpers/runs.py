"""Reading back what trainings logged to an MLflow store; one split trained as the train
task trains it."""

from __future__ import annotations

from mlflow.entities import Run
from mlflow.tracking import MlflowClient


def all_runs(client: MlflowClient, filter_string: str = "") -> list[Run]:
    """Every run of every experiment in the client's store (none before the store has one)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=filter_string) if experiments else []


def train_one_split(cfg) -> dict:
    """`train_fold` as `train` calls it for one split (the config's selection, tracker and
    resume point); its metrics, which `train` does not return."""
    from movierec.tasks.train import train_fold, training_parts
    from movierec.tracking.resume import read_resume

    selection, tracker = training_parts(cfg, None)
    return train_fold(cfg, selection, tracker, read_resume(cfg))
