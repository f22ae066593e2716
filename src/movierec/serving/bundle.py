"""A trained model packaged with what it needs to answer in original IDs.

A bundle is a folder:
    model.ckpt       the Lightning checkpoint (network config, schema, weights)
    graph.pt         the training message graph's tensors (`graph_tensors`)
    users.parquet    row i: userId of user index i (+ side columns)
    movies.parquet   row j: movieId, title, genres of movie index j
    heldout.parquet  user, movie indices of the validation and test ratings: rated movies
                     that are not graph edges (bundles written before it existed lack it;
                     then only training ratings count as rated)
    scoring.pt       the node tables encoded once and the network's scoring head
                     (`serving.snapshot`; absent for a network that offers no head)
`TrainedModel.load(bundle)` restores it on CPU, without the training stack
(`serving.network`). With a scoring snapshot it ranks and rates known users from the
snapshot alone and builds the network (importing PyG) only for what needs the encoder,
such as a new user. `predict_ratings` maps original userId/movieId pairs to clamped
predicted ratings in stars; `score_users` scores every movie for a block of users.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from movierec.data.graph import graph_tensors
from movierec.data.processed import RatingsData, lookup_ids
from movierec.errors import DataError
from movierec.models.base import NodeEmbeddings
from movierec.ranking.popularity import Popularity
from movierec.ranking.user_items import UserItems
from movierec.serving.network import ServedNetwork
from movierec.serving.snapshot import SCORING, ScoringSnapshot
from movierec.training.checkpoints import UNREADABLE

if TYPE_CHECKING:  # pytorch_lightning, torchmetrics, PyG: seconds the serving path skips
    from movierec.data.split_data import SplitData
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
    torch.save(_compact(graph_tensors(split.graph)), directory / GRAPH)
    data.users.to_parquet(directory / USERS, index=False)
    data.movies.to_parquet(directory / MOVIES, index=False)
    _heldout_pairs(split).to_parquet(directory / HELDOUT, index=False)
    served = ServedNetwork.from_checkpoint(directory / CHECKPOINT, graph_tensors(split.graph))
    snapshot = ScoringSnapshot.of(served.net, served.graph, served.schema.rating_scale)
    if snapshot is not None:
        snapshot.save(directory / SCORING)
    return directory


def _compact(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` with each view of a larger storage copied out: `torch.save` writes a
    view's whole storage (the graph's edge index is a view of a (3, E) tensor)."""
    return {
        name: tensor.clone() if tensor.untyped_storage().nbytes() > tensor.nbytes else tensor
        for name, tensor in tensors.items()
    }


class TrainedModel:
    """A loaded bundle: the network (built when first needed), its graph and the ID maps.

    Args:
        users, movies: the ID maps (row = index).
        tensors: the training message graph as `graph_tensors`.
        module: the trained network with its graph: a `ServedNetwork` (from a bundle)
            or a `RatingPredictor` with its graph set (`set_graph`); either offers
            `net`, `schema` and `graph`. Or None, with `load_module`, a
            function that builds it when first needed.
        heldout: user, movie index columns of rated movies that are not graph edges.
        snapshot: the bundle's scoring snapshot; known users are then scored from it and
            the network is built only for what needs its encoder (a new user).
    """

    def __init__(
        self,
        users: pd.DataFrame,
        movies: pd.DataFrame,
        tensors: dict[str, torch.Tensor],
        module: ServedNetwork | RatingPredictor | None = None,
        heldout: pd.DataFrame | None = None,
        snapshot: ScoringSnapshot | None = None,
        load_module: Callable[[], ServedNetwork] | None = None,
    ):
        if module is None and load_module is None:
            raise ValueError("TrainedModel needs a module or a load_module function")
        self._module = module
        self._load_module = load_module
        self.users = users
        self.movies = movies
        self.tensors = tensors
        self.heldout = heldout
        self.snapshot = snapshot
        self._user_ids = users["userId"].to_numpy()
        self._movie_ids = movies["movieId"].to_numpy()

    @classmethod
    def load(cls, directory: str | Path, build_network: bool = True) -> TrainedModel:
        """Restore a bundle on CPU; a missing or damaged file is a `DataError` naming it.

        Args:
            build_network: build the network now (a server checks every file at start);
                False builds it only when something needs its encoder, if the bundle has a
                scoring snapshot (the recommend command: no PyG import for a known user).
        """
        directory = Path(directory)
        tensors = _read_tensors(directory / GRAPH)
        checkpoint = directory / CHECKPOINT
        if not checkpoint.is_file():
            raise _damaged(checkpoint, FileNotFoundError("no such file"))
        snapshot = None
        if (directory / SCORING).is_file():
            snapshot = ScoringSnapshot.load(directory / SCORING)
        heldout = _read_table(directory / HELDOUT) if (directory / HELDOUT).is_file() else None
        model = cls(
            _read_table(directory / USERS),
            _read_table(directory / MOVIES),
            tensors,
            heldout=heldout,
            snapshot=snapshot,
            load_module=lambda: ServedNetwork.from_checkpoint(checkpoint, tensors, key="bundle"),
        )
        if build_network or snapshot is None:
            _ = model.module
        return model

    @classmethod
    def from_split(cls, module: RatingPredictor, split: SplitData, data: RatingsData):
        """`module` over the `split` of `data` it was trained on (no bundle)."""
        module.set_graph(split.graph)
        tensors = graph_tensors(split.graph)
        return cls(data.users, data.movies, tensors, module, _heldout_pairs(split))

    @cached_property
    def module(self) -> ServedNetwork | RatingPredictor:
        """The network in eval mode with its graph (built on first use from a bundle)."""
        module = self._module if self._module is not None else self._load_module()
        return module.eval()

    @property
    def rating_scale(self) -> tuple[float, float]:
        if self.snapshot is not None:
            return self.snapshot.rating_scale
        return self.module.schema.rating_scale

    @property
    def predicts_ratings(self) -> bool:
        """Whether the model predicts stars (False: it only ranks, e.g. LightGCN)."""
        if self.snapshot is not None:
            return self.snapshot.predicts_ratings
        return self.module.net.predicts_ratings

    @property
    def network_name(self) -> str:
        """The network's class name (e.g. SageNet), for messages."""
        if self.snapshot is not None:
            return self.snapshot.network
        return type(self.module.net).__name__

    def clamp(self, rating: torch.Tensor) -> torch.Tensor:
        low, high = self.rating_scale
        return rating.clamp(low, high)

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
        if not self.predicts_ratings:
            raise DataError(
                f"{self.network_name} only ranks movies, it predicts no ratings: "
                "send top-K requests (userId, k) instead of rating pairs (userId, movieId)"
            )
        users = torch.from_numpy(self.user_index(user_ids))
        movies = torch.from_numpy(self.movie_index(movie_ids))
        if len(users) != len(movies):
            raise DataError(f"got {len(users)} userIds but {len(movies)} movieIds")
        embeddings = self.embeddings
        with torch.no_grad():
            if self.snapshot is not None:
                rating = self.snapshot.head(embeddings.user, embeddings.movie, users, movies)[0]
            else:
                rating = self.module.net.decode(embeddings, users, movies).rating
        return self.clamp(rating).double().numpy()

    # ------------------------------------------------------------------ ranking

    @cached_property
    def embeddings(self) -> NodeEmbeddings:
        """Node embeddings of the training graph, encoded once per loaded model."""
        if self.snapshot is not None:
            return self.snapshot.embeddings
        with torch.no_grad():
            return self.module.net.encode(self.module.graph)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Unclamped predicted stars of every movie for user indices (B,), (B, n_movies)."""
        embeddings = self.embeddings
        with torch.no_grad():  # a plug-in's override may not disable gradients itself
            if self.snapshot is not None:
                return self.snapshot.head.score_users(embeddings.user, embeddings.movie, users)
            return self.module.net.score_users(embeddings, users)

    @cached_property
    def rated(self) -> UserItems:
        """Movies each user has rated: training edges plus held-out (val/test) ratings."""
        user, movie = self.tensors["edge_index"].cpu()
        if self.heldout is not None and len(self.heldout):
            user = torch.cat([user, torch.tensor(self.heldout["user"].to_numpy(np.int64))])
            movie = torch.cat([movie, torch.tensor(self.heldout["movie"].to_numpy(np.int64))])
        return UserItems.from_pairs(user, movie, self.n_users, self.n_movies)

    @cached_property
    def popularity(self) -> Popularity:
        """The popularity baseline of this model's training ratings."""
        edges, stars = self.tensors["edge_index"], self.tensors["edge_label"]
        return Popularity.from_ratings(edges[1], stars, self.n_movies)


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
