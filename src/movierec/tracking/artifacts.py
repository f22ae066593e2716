"""Reading a run and its artifacts from a tracking store, for serving.

MLflow is imported inside the functions: a command that answers from its local bundle
cache (`serving.loading`) never starts MLflow's client (about 2 s).
"""

from __future__ import annotations

import os

from movierec.redaction import redact


class StoreReadError(Exception):
    """The store has no such run, model version or artifact (or could not be read); the
    message is MLflow's reason on one line, passwords hidden."""


def run_status(tracking_uri: str, run_id: str) -> str:
    """The run's status (RUNNING, FINISHED, …); StoreReadError when the store has no
    such run."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient(tracking_uri).get_run(run_id).info.status
    except MlflowException as err:
        raise StoreReadError(_one_line(err)) from None


def download(artifact_uri: str, tracking_uri: str, folder: str) -> str:
    """`artifact_uri` (runs:/… or models:/…) from the store at `tracking_uri`, into
    `folder`; its local path. StoreReadError when it cannot be fetched.

    MLflow 3 resolves `runs:/<id>/model/…` through the run's logged model, which it looks up
    in the global tracking store, whatever `tracking_uri=` says; so the global URI is set
    for the download and restored after.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=folder)
    except (MlflowException, OSError) as err:
        raise StoreReadError(_one_line(err)) from None
    finally:
        mlflow.set_tracking_uri(previous)


def _one_line(err: BaseException) -> str:
    return redact(" ".join(str(err).split()))[:200]
