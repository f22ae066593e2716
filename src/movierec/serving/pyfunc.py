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

`RequestAnswerer` is what a request means; MLflow's side (the pyfunc wrapper mapping errors
to HTTP 400/500, the logging of the model) is `movierec.tracking.pyfunc_model`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import movierec
from movierec.data.split_data import SplitData
from movierec.serving.bundle import TrainedModel, save_bundle
from movierec.serving.requests import (
    TOPK_OPTIONS,
    check_k,
    integer_column,
    request_form,
    request_frame,
    topk_options,
)
from movierec.tracking.tracker import Run, ServableModel

ENTRY_FILE = Path(__file__).with_name("pyfunc_entry.py")
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


class RequestAnswerer:
    """Answers request frames with a `serving.recommender.Recommender` (batch scoring)."""

    def __init__(self, recommender) -> None:
        self.recommender = recommender

    def __call__(self, model_input: pd.DataFrame) -> pd.Series | pd.DataFrame:
        """Check and answer one request (`serving.requests`)."""
        requests = request_frame(model_input)
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


def load_answerer(bundle: str | Path) -> RequestAnswerer:
    """The answerer of the bundle folder `bundle` (what the served model loads)."""
    from movierec.serving.recommender import Recommender

    return RequestAnswerer(Recommender(TrainedModel.load(bundle), source="the served model"))


def publish_trained_model(run: Run, checkpoint: str, datamodule) -> str:
    """Bundle the model at `checkpoint` with its split, test-call it and publish it on
    `run` (its `model`); return its model URI."""
    split, data = datamodule.split_data, datamodule.data
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(Path(tmp) / "bundle", checkpoint, split, data)
        # the network is built (and every file checked) once, by the test call's load
        example = _input_example(TrainedModel.load(bundle, build_network=False), split)
        return publish_servable_model(run, bundle, example)


def publish_servable_model(run: Run, bundle: Path, example: pd.DataFrame) -> str:
    """Answer `example` with `bundle` (fail here, not at serving time), then publish it on
    `run`; return its model URI."""
    load_answerer(bundle)(example)
    code_path = Path(movierec.__file__).parent
    return run.publish_model(ServableModel(bundle, example, ENTRY_FILE, code_path, REQUIREMENTS))


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


def _uniform(k: np.ndarray, options: dict[str, np.ndarray]) -> bool:
    """Whether every row of a top-K request asks the same (k and each option). Checked on
    arrays: pandas' groupby costs more than scoring a user."""
    if (k != k[0]).any():
        return False
    return all(all(value == values[0] for value in values) for values in options.values())
