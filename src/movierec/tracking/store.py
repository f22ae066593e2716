"""Where runs go: the tracking URI, the experiment and its artifact location.

Several trainings or sweep workers may start together on a store that does not exist
yet. MLflow creates a sqlite store's schema on first use with no guard (three processes
racing end in "table … already exists" or UNIQUE errors), so for a local sqlite store
the schema and each experiment are created under an exclusive file lock beside the
database. Processes on several hosts should share a tracking server (`mlflow server`,
README "Team setup"), which serializes this itself.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from mlflow.tracking import MlflowClient

from movierec.errors import ConfigError

#: The experiment's kind for MLflow 3's UI: "custom_model_development" (machine learning),
#: not GenAI. MLflow 3.17's UI no longer opens the page by it but by its own GenAI / Model
#: training switch (URL `?workflowType=machine_learning`); see README "MLflow tracking".
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def is_local_uri(uri: str) -> bool:
    """A database or file store on this machine (artifacts then go under `mlruns/`)."""
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def ensure_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """Id of experiment `name`, created with artifacts under `artifact_root/<name>` if new."""
    if not name:
        raise ConfigError("logger.mlflow.experiment_name must not be empty")
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(KIND_TAG) != KIND:
            with store_lock(client.tracking_uri):  # the tag insert races like any other
                client.set_experiment_tag(experiment.experiment_id, KIND_TAG, KIND)
        return experiment.experiment_id
    location = None
    if artifact_root and is_local_uri(client.tracking_uri):
        location = (Path(artifact_root).expanduser().resolve() / name).as_uri()
    with store_lock(client.tracking_uri):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:  # another process created it while we waited
            return experiment.experiment_id
        try:
            return client.create_experiment(name, artifact_location=location, tags={KIND_TAG: KIND})
        except Exception:
            # a process on another host (a shared server) created it first
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id


def prepare_local_store(uri: str) -> None:
    """Create a local sqlite store (folder and schema) once, even when several processes
    start together; nothing for other stores."""
    path = sqlite_path(uri)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with store_lock(uri):
        # the first query builds the schema (MLflow's migrations) while we hold the lock
        MlflowClient(uri).search_experiments(max_results=1)


def sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).expanduser()
    return None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock on `<database>.lock` for a local sqlite store (no-op otherwise);
    released by the kernel if the holder dies."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_model_exists(model_uri: str, tracking_uri: str) -> None:
    """Refuse a `runs:/<id>/…` or `models:/<name>@<alias>|/<version>` URI whose run or
    registered version the store does not have (one line, not a server's traceback)."""
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    kind, _, rest = model_uri.partition(":/")
    try:
        if kind == "runs":
            client.get_run(rest.strip("/").split("/", 1)[0])
        elif kind == "models" and "@" in rest:
            client.get_model_version_by_alias(*rest.strip("/").split("@", 1))
        elif kind == "models":
            name, _, version = rest.strip("/").rpartition("/")
            client.get_model_version(name, version)
    except MlflowException:
        raise ConfigError(
            f"model={model_uri}: no such run or registered model version in {tracking_uri}"
        ) from None
