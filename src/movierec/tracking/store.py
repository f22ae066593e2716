"""Where runs go: the tracking URI, the experiment and its artifact location."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from movierec.errors import ConfigError


def is_local_uri(uri: str) -> bool:
    """A database or file store on this machine (artifacts then go under `mlruns/`)."""
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def ensure_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """Id of experiment `name`, created with artifacts under `artifact_root/<name>` if new."""
    if not name:
        raise ConfigError("logger.mlflow.experiment_name must not be empty")
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if artifact_root and is_local_uri(client.tracking_uri):
        location = (Path(artifact_root).expanduser().resolve() / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        # another process (a DDP rank, a parallel sweep) created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def prepare_local_store(uri: str) -> None:
    """Create the folder of a local sqlite store so MLflow can open it."""
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
