"""The MLflow pyfunc model: predicted ratings for (userId, movieId) pairs, or top-K movies.

Two request forms, told apart by their columns:

    rating   userId, movieId                   → one predicted rating per row ("rating")
    top-K    userId, k [, exclude_rated, genre, fallback]
                                               → k rows per user: userId, rank, movieId,
                                                 title, genres, rating, source

    model = mlflow.pyfunc.load_model("runs:/<run_id>/model")
    model.predict(pd.DataFrame({"userId": [1, 1], "movieId": [31, 1029]}))  # → ratings
    model.predict(pd.DataFrame({"userId": [1, 2], "k": [10, 5]}))         # → top-K rows

`mlflow models serve -m runs:/<run_id>/model --env-manager local` answers `POST
/invocations` with `{"dataframe_split": {"columns": ["userId", "movieId"], "data": [[1, 31]]}}`
→ `{"predictions": [{"rating": …}]}`, and with `{"dataframe_split": {"columns": ["userId",
"k"], "data": [[1, 10]]}}` → `{"predictions": [{"userId": 1, "rank": 1, "movieId": …}, …]}`.
In a top-K request `exclude_rated` defaults to true, `genre` (one genre) and `fallback`
("popular" answers unknown users by popularity) to none; unknown users without a fallback,
and unknown movie ids, are refused with a message naming them. JSON, CSV and Parquet
bodies are checked alike (`serving.requests`): an unknown column, an id or k that is not
an integer, an `exclude_rated` that is not a boolean is an HTTP 400 whose message is the
project's one line, with no stack trace.

The MLmodel file names the model's code and bundle by their place in the model folder,
not by paths of the machine that logged it (`_PortablePyfunc`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.models.model import MLMODEL_FILE_NAME, MODEL_CODE_PATH
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

import movierec
from movierec.data.split_data import SplitData
from movierec.errors import MovieRecError
from movierec.serving.bundle import TrainedModel, save_bundle
from movierec.serving.requests import (
    TOPK_OPTIONS,
    check_k,
    integer_column,
    request_form,
    request_frame,
    topk_options,
)

log = logging.getLogger(__name__)

BUNDLE_ARTIFACT = "bundle"
REQUIREMENTS = [
    "torch>=2.4",
    "torch-geometric>=2.5",
    "pytorch-lightning>=2.4",
    "torchmetrics>=1.4",
    "hydra-core>=1.3",
    "pandas>=2.1",
    "pyarrow>=15",
    "numpy>=1.26",
]


class RatingModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around `serving.recommender.Recommender` (one load, batch scoring)."""

    def load_context(self, context) -> None:
        from movierec.serving.recommender import Recommender

        self.recommender = Recommender(
            TrainedModel.load(context.artifacts[BUNDLE_ARTIFACT]), source="the served model"
        )

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series | pd.DataFrame:
        """Answer one request. A user error becomes MLflow's INVALID_PARAMETER_VALUE (HTTP
        400) whose message is the project's one line; any other error an INTERNAL_ERROR
        (HTTP 500) naming its type, its traceback in the server's log: neither response
        carries a stack trace (MLflow adds one to any other exception)."""
        try:
            return self._answer(request_frame(model_input))
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

    def _answer(self, requests: pd.DataFrame) -> pd.Series | pd.DataFrame:
        form = request_form(requests)
        users = integer_column(requests, "userId")
        model = self.recommender.model
        if form == "rating":
            ratings = model.predict_ratings(users, integer_column(requests, "movieId"))
            return pd.Series(ratings, name="rating")
        k = integer_column(requests, "k")
        check_k(k, model.n_movies)
        options = topk_options(requests)
        if _uniform(k, options):  # the common request: one batch, no grouping (~10× faster)
            first = {name: values[0] for name, values in options.items()}
            return self.recommender.recommend(users, int(k[0]), **first)
        return self._top_k(pd.DataFrame({"userId": users, "k": k, **options}))

    def _top_k(self, requests: pd.DataFrame) -> pd.DataFrame:
        """Rows grouped by their options, each group scored as one batch, in request order."""
        frame = requests.assign(_order=range(len(requests)))
        parts = []
        for (k, exclude, genre, fallback), group in frame.groupby(
            ["k", *TOPK_OPTIONS], dropna=False, sort=False
        ):
            top = self.recommender.recommend(
                group["userId"].tolist(),
                int(k),
                exclude_rated=bool(exclude),
                genre=None if pd.isna(genre) else str(genre),
                fallback=None if pd.isna(fallback) else str(fallback),
            )
            order = dict(zip(group["userId"], group["_order"], strict=False))
            parts.append(top.assign(_order=top["userId"].map(order)))
        result = pd.concat(parts, ignore_index=True).sort_values(["_order", "rank"], kind="stable")
        return result.drop(columns="_order").reset_index(drop=True)


def publish_trained_model(run_id: str, client_uri: str, checkpoint: str, datamodule) -> str:
    """Bundle the model at `checkpoint` with its split, test-call it and log it as the
    run's `model` artifact (pyfunc flavor); return its model URI."""
    split, data = datamodule.split_data, datamodule.data
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(Path(tmp) / "bundle", checkpoint, split, data)
        # the network is built (and every file checked) once, by log_servable_model's load
        example = _input_example(TrainedModel.load(bundle, build_network=False), split)
        return log_servable_model(run_id, client_uri, bundle, example)


def _input_example(model: TrainedModel, split: SplitData) -> pd.DataFrame:
    """Two training pairs as a rating request, or two users' top-3 for a ranking-only
    model."""
    user, movie, _ = split.rows("train")
    rows = np.arange(min(2, len(user)))
    users = model.users["userId"].to_numpy()[user.numpy()[rows]]
    if not model.predicts_ratings:
        return pd.DataFrame({"userId": users, "k": np.full(len(users), 3, dtype=np.int64)})
    movies = model.movies["movieId"].to_numpy()[movie.numpy()[rows]]
    return pd.DataFrame({"userId": users, "movieId": movies})


def log_servable_model(run_id: str, client_uri: str, bundle: Path, example: pd.DataFrame) -> str:
    """Log `bundle` as the run's `model` artifact (pyfunc flavor); return its model URI."""
    wrapper = RatingModel()
    wrapper.load_context(_Context({BUNDLE_ARTIFACT: str(bundle)}))
    wrapper.predict(None, example)  # fail here, not at serving time
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
                python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
                artifacts={BUNDLE_ARTIFACT: str(bundle)},
                code_paths=[str(Path(movierec.__file__).parent)],
                signature=False,
                input_example=example,
                pip_requirements=REQUIREMENTS,
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


def _uniform(k: np.ndarray, options: dict[str, np.ndarray]) -> bool:
    """Whether every row of a top-K request asks the same (k and each option). Checked on
    arrays: pandas' groupby costs more than scoring a user."""
    if (k != k[0]).any():
        return False
    return all(all(value == values[0] for value in values) for values in options.values())


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


class _Context:
    def __init__(self, artifacts: dict[str, str]) -> None:
        self.artifacts = artifacts
