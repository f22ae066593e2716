"""A trained model packaged with what it needs to answer in original IDs.

A bundle is a folder:
    model.ckpt       the Lightning checkpoint (network config, schema, weights)
    graph.pt         the training message graph's tensors (`graph_tensors`)
    users.parquet    row i: userId of user index i (+ side columns)
    movies.parquet   row j: movieId, title, genres of movie index j
    heldout.parquet  user, movie indices of the validation and test ratings: rated movies
                     that are not graph edges (bundles written before it existed lack it;
                     then only training ratings count as rated)
`TrainedModel.load(bundle)` restores it on CPU, without the training stack
(`serving.network`); `predict_ratings` maps original
userId/movieId pairs to clamped predicted ratings in stars; `score_users` scores every
movie for a block of users from node embeddings encoded once.
"""

from __future__ import annotations

import shutil
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from movierec.data.graph import RATES, graph_tensors
from movierec.data.processed import RatingsData, lookup_ids
from movierec.data.split_data import SplitData
from movierec.errors import DataError
from movierec.models.base import NodeEmbeddings
from movierec.ranking.popularity import Popularity
from movierec.ranking.user_items import UserItems
from movierec.serving.network import ServedNetwork
from movierec.training.checkpoints import UNREADABLE

if TYPE_CHECKING:  # pytorch_lightning and torchmetrics: seconds the serving path skips
    from movierec.training.module import RatingPredictor

CHECKPOINT = "model.ckpt"
GRAPH = "graph.pt"
USERS = "users.parquet"
MOVIES = "movies.parquet"
HELDOUT = "heldout.parquet"


def save_bundle(
    directory: Path, checkpoint: str | Path, split: SplitData, data: RatingsData
) -> Path:
    """Write a bundle for the model at `checkpoint` trained on `split` of `data`."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, directory / CHECKPOINT)
    torch.save(graph_tensors(split.graph), directory / GRAPH)
    data.users.to_parquet(directory / USERS, index=False)
    data.movies.to_parquet(directory / MOVIES, index=False)
    _heldout_pairs(split).to_parquet(directory / HELDOUT, index=False)
    return directory


class TrainedModel:
    """A loaded bundle: the network in eval mode, its graph and the ID maps.

    Args:
        module: the trained network with its graph: a `ServedNetwork` (loaded from a
            bundle) or a `RatingPredictor` with its graph set (`set_graph`); either offers
            `net`, `schema`, `graph` and `clamp`.
        users, movies: the ID maps (row = index).
        heldout: user, movie index columns of rated movies that are not graph edges.
    """

    def __init__(
        self,
        module: ServedNetwork | RatingPredictor,
        users: pd.DataFrame,
        movies: pd.DataFrame,
        heldout: pd.DataFrame | None = None,
    ):
        self.module = module.eval()
        self.users = users
        self.movies = movies
        self.heldout = heldout
        self._user_ids = users["userId"].to_numpy()
        self._movie_ids = movies["movieId"].to_numpy()

    @classmethod
    def load(cls, directory: str | Path) -> TrainedModel:
        """Restore a bundle on CPU; a missing or damaged file is a `DataError` naming it."""
        directory = Path(directory)
        tensors = _read_tensors(directory / GRAPH)
        module = ServedNetwork.from_checkpoint(directory / CHECKPOINT, tensors, key="bundle")
        heldout = _read_table(directory / HELDOUT) if (directory / HELDOUT).is_file() else None
        return cls(module, _read_table(directory / USERS), _read_table(directory / MOVIES), heldout)

    @classmethod
    def from_split(cls, module: RatingPredictor, split: SplitData, data: RatingsData):
        """`module` over the `split` of `data` it was trained on (no bundle)."""
        module.set_graph(split.graph)
        return cls(module, data.users, data.movies, _heldout_pairs(split))

    @property
    def rating_scale(self) -> tuple[float, float]:
        return self.module.schema.rating_scale

    @property
    def n_users(self) -> int:
        return len(self._user_ids)

    @property
    def n_movies(self) -> int:
        return len(self._movie_ids)

    def user_index(self, user_ids) -> np.ndarray:
        return lookup_ids(self._user_ids, user_ids, "userId")

    def movie_index(self, movie_ids) -> np.ndarray:
        return lookup_ids(self._movie_ids, movie_ids, "movieId")

    def known_users(self, user_ids) -> np.ndarray:
        """(B,) bool: which original userIds the model was trained with."""
        values = np.atleast_1d(np.asarray(user_ids)).astype(np.int64)
        position = np.clip(np.searchsorted(self._user_ids, values), 0, self.n_users - 1)
        return self._user_ids[position] == values

    def predict_ratings(self, user_ids, movie_ids) -> np.ndarray:
        """Predicted stars (float64, clamped to the scale) for original id pairs, shape (B,)."""
        if not self.module.net.predicts_ratings:
            raise DataError(
                f"{type(self.module.net).__name__} only ranks movies, it predicts no ratings: "
                "send top-K requests (userId, k) instead of rating pairs (userId, movieId)"
            )
        users = torch.from_numpy(self.user_index(user_ids))
        movies = torch.from_numpy(self.movie_index(movie_ids))
        if len(users) != len(movies):
            raise DataError(f"got {len(users)} userIds but {len(movies)} movieIds")
        embeddings = self.embeddings
        with torch.no_grad():
            rating = self.module.net.decode(embeddings, users, movies).rating
        return self.module.clamp(rating).double().numpy()

    # ------------------------------------------------------------------ ranking

    @cached_property
    def embeddings(self) -> NodeEmbeddings:
        """Node embeddings of the training graph, encoded once per loaded model."""
        with torch.no_grad():
            return self.module.net.encode(self.module.graph)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Unclamped predicted stars of every movie for user indices (B,), (B, n_movies)."""
        with torch.no_grad():  # a plug-in's override may not disable gradients itself
            return self.module.net.score_users(self.embeddings, users)

    @cached_property
    def rated(self) -> UserItems:
        """Movies each user has rated: training edges plus held-out (val/test) ratings."""
        user, movie = self.module.graph[RATES].edge_index.cpu()
        if self.heldout is not None and len(self.heldout):
            user = torch.cat([user, torch.tensor(self.heldout["user"].to_numpy(np.int64))])
            movie = torch.cat([movie, torch.tensor(self.heldout["movie"].to_numpy(np.int64))])
        return UserItems.from_pairs(user, movie, self.n_users, self.n_movies)

    @cached_property
    def popularity(self) -> Popularity:
        """The popularity baseline of this model's training ratings."""
        store = self.module.graph[RATES]
        return Popularity.from_ratings(store.edge_index[1], store.edge_label, self.n_movies)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE as err:
        raise _damaged(path, err) from None


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise _damaged(path, err) from None


def _damaged(path: Path, err: BaseException) -> DataError:
    reason = " ".join(str(err).split())[:200]
    return DataError(
        f"bundle file {path} is missing or damaged ({reason}); download the model again "
        "(e.g. `mlflow artifacts download`) or retrain it"
    )


def _heldout_pairs(split: SplitData) -> pd.DataFrame:
    """User and movie indices (int32) of the validation and test ratings."""
    parts = [split.rows(part) for part in ("val", "test")]
    return pd.DataFrame(
        {
            "user": torch.cat([p[0] for p in parts]).numpy().astype(np.int32),
            "movie": torch.cat([p[1] for p in parts]).numpy().astype(np.int32),
        }
    )
