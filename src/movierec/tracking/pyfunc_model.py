"""The MLflow pyfunc model around a request answerer, and its logging on a run.

Serving owns what a request means (`serving.pyfunc.RequestAnswerer`: a DataFrame in, a
Series of ratings or a DataFrame of top-K rows out); this module owns how MLflow carries
it, so MLflow stays behind the tracking package:

    ServedModel(load)       mlflow.pyfunc.PythonModel: `load(bundle folder)` builds the
                            answerer once (load_context); predict maps the project's
                            errors to HTTP statuses
    set_served_model(load)  the "models from code" entry (`serving/pyfunc_entry.py`)
    log_pyfunc_model(...)   logs a bundle as the run's `model` artifact

A user error (`MovieRecError`) becomes MLflow's INVALID_PARAMETER_VALUE (HTTP 400) whose
message is the project's one line; any other error an INTERNAL_ERROR (HTTP 500) naming
its type, its traceback in the server's log: neither response carries a stack trace
(MLflow adds one to any other exception). The MLmodel file names the model's code and
bundle by their place in the model folder, not by paths of the machine that logged it
(`_PortablePyfunc`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.models.model import MLMODEL_FILE_NAME, MODEL_CODE_PATH
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

from movierec.errors import MovieRecError
from movierec.tracking.tracker import ServableModel

log = logging.getLogger(__name__)

BUNDLE_ARTIFACT = "bundle"

#: answers one request frame: a Series of ratings or a DataFrame of top-K rows
Answerer = Callable[[pd.DataFrame], "pd.Series | pd.DataFrame"]


class ServedModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around the answerer that `load(bundle folder)` builds (one load,
    batch scoring)."""

    def __init__(self, load: Callable[[str], Answerer]) -> None:
        self._load = load
        self.answer: Answerer | None = None

    def load_context(self, context) -> None:
        self.answer = self._load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series | pd.DataFrame:
        """Answer one request; errors as the module docstring says."""
        try:
            return self.answer(model_input)
        except MovieRecError as err:
            raise MlflowException(
                " ".join(str(err).split()), error_code=INVALID_PARAMETER_VALUE
            ) from None
        except Exception as err:
            log.exception("the served model failed on a request")
            raise MlflowException(
                f"the model failed on this request ({type(err).__name__}); the server's "
                "log has the details",
                error_code=INTERNAL_ERROR,
            ) from None


def set_served_model(load: Callable[[str], Answerer]) -> None:
    """Declare the model of a "models from code" entry file."""
    mlflow.models.set_model(ServedModel(load))


def log_pyfunc_model(run_id: str, client_uri: str, model: ServableModel) -> str:
    """Log `model.bundle` as the run's `model` artifact (pyfunc flavor, the model defined
    by `model.entry_file`, the package at `model.code_path` shipped beside it); return its
    model URI. The run's test metrics are linked to the logged model."""
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client_uri)
    try:
        with mlflow.start_run(run_id=run_id):
            # no signature: an MLflow input schema drops unknown columns and casts values
            # ("false" to true) before predict sees them; `serving.requests` checks them
            info = Model.log(
                artifact_path=None,
                name="model",
                flavor=_PortablePyfunc,
                flavor_name="pyfunc.ModelFromCode",
                python_model=str(model.entry_file),
                artifacts={BUNDLE_ARTIFACT: str(model.bundle)},
                code_paths=[str(model.code_path)],
                signature=False,
                input_example=model.example,
                pip_requirements=model.requirements,
            )
        link_test_metrics(mlflow.MlflowClient(client_uri), run_id, info.model_id)
    finally:
        mlflow.set_tracking_uri(previous_uri)
    return info.model_uri


def link_test_metrics(client: mlflow.MlflowClient, run_id: str, model_id: str) -> None:
    """Link the run's `test/*` metrics (the evaluation of the logged checkpoint) to its
    logged model, so the model's page shows them. `log_model` links only the metrics
    logged at step 0 (the `summary/*` ones and `<selection metric>_best`); the test metrics
    sit at the training's last step. Each is logged again, same step and time, with the
    model's id, as `log_model` does for step 0."""
    linked = []
    for key in client.get_run(run_id).data.metrics:
        if key.startswith("test/"):
            last = max(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
            linked.append(Metric(key, last.value, last.timestamp, last.step, model_id=model_id))
    if linked:
        client.log_batch(run_id, metrics=linked)


class _PortablePyfunc:
    """`mlflow.pyfunc` as `Model.log`'s flavor, writing an MLmodel free of this machine's
    paths. For a model from code MLflow records the code file's absolute path
    (`model_code_path`), and each artifact's source (a temporary folder); loading reads
    only the code file's name (copied into the model folder) and each artifact's path in
    the model folder, so both are recorded as those."""

    @staticmethod
    def save_model(path: str, mlflow_model: Model, **kwargs) -> None:
        mlflow.pyfunc.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
        config = mlflow_model.flavors[mlflow.pyfunc.FLAVOR_NAME]
        config[MODEL_CODE_PATH] = Path(config[MODEL_CODE_PATH]).name
        for artifact in config.get("artifacts", {}).values():
            artifact["uri"] = artifact["path"]
        mlflow_model.save(str(Path(path) / MLMODEL_FILE_NAME))
