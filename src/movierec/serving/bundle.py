"""A trained model packaged with what it needs to answer in original IDs.

A bundle is a folder:
    model.ckpt       the Lightning checkpoint (network config, schema, weights)
    graph.pt         the training message graph's tensors (`graph_tensors`)
    users.parquet    row i: userId of user index i (+ side columns)
    movies.parquet   row j: movieId, title, genres of movie index j
    rated.npz        the movies each user rated in training, validation and test
                     (`serving.tables`)
    scoring.npz      the node tables encoded once and the network's scoring head
                     (`serving.snapshot`; absent for a network that offers no head)
    manifest.json    every other file with its size and SHA-256, written last
                     (`serving.manifest`); checked at every load
A bundle without a manifest, or without a file it must hold, is damaged: it is never
read as an older format (one without rated.npz would recommend movies users rated).

`TrainedModel.load(bundle)` restores it on CPU, without the training stack
(`serving.network`). With scoring.npz it ranks and rates known users with NumPy alone:
torch (2–3 s of imports) is imported only where a method needs the network, the graph
or the popularity baseline (a new user, an unknown user's fallback). `predict_ratings`
maps original userId/movieId pairs to clamped predicted ratings in stars; `score_users`
scores every movie for a block of users.
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

from movierec.data.processed import RatingsData, lookup_ids
from movierec.errors import DataError
from movierec.serving.manifest import check_manifest, write_manifest
from movierec.serving.tables import RATED, SCORING, RatedMovies, ScoringTables
from movierec.serving.tables import damaged as _damaged

if TYPE_CHECKING:  # torch, PyG, pytorch_lightning: seconds the known-user path skips
    import torch

    from movierec.data.split_data import SplitData
    from movierec.models.base import NodeEmbeddings
    from movierec.ranking.popularity import Popularity
    from movierec.serving.network import ServedNetwork
    from movierec.training.module import RatingPredictor

CHECKPOINT = "model.ckpt"
GRAPH = "graph.pt"
USERS = "users.parquet"
MOVIES = "movies.parquet"
#: the files every bundle holds (scoring.npz is optional)
REQUIRED = (CHECKPOINT, GRAPH, USERS, MOVIES, RATED)


def save_bundle(
    directory: Path, checkpoint: str | Path, split: SplitData, data: RatingsData
) -> Path:
    """Write a bundle for the model at `checkpoint` trained on `split` of `data`; its
    manifest last, so a bundle with one is whole."""
    import torch

    from movierec.data.graph import graph_tensors
    from movierec.serving.network import ServedNetwork
    from movierec.serving.snapshot import write_snapshot

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, directory / CHECKPOINT)
    tensors = graph_tensors(split.graph)
    torch.save(_compact(tensors), directory / GRAPH)
    data.users.to_parquet(directory / USERS, index=False)
    data.movies.to_parquet(directory / MOVIES, index=False)
    _rated_movies(tensors, _heldout_pairs(split), len(data.users), len(data.movies)).save(
        directory / RATED
    )
    served = ServedNetwork.from_checkpoint(directory / CHECKPOINT, tensors)
    write_snapshot(served.net, served.graph, served.schema.rating_scale, directory / SCORING)
    write_manifest(directory)
    return directory


def _compact(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` with each view of a larger storage copied out: `torch.save` writes a
    view's whole storage (the graph's edge index is a view of a (3, E) tensor)."""
    return {
        name: tensor.clone() if tensor.untyped_storage().nbytes() > tensor.nbytes else tensor
        for name, tensor in tensors.items()
    }


class TrainedModel:
    """A loaded bundle: ID maps, scoring tables, and the network built when first needed.

    Args:
        users, movies: the ID maps (row = index).
        module: the trained network with its graph: a `ServedNetwork` (from a bundle)
            or a `RatingPredictor` with its graph set (`set_graph`); either offers
            `net`, `schema` and `graph`. Or None, with `load_module`, a function of
            the graph tensors that builds it when first needed.
        tensors: the training message graph as `graph_tensors`; or None, with
            `load_tensors`, a function that reads them when first needed.
        tables: the bundle's scoring tables; known users are then scored from them and
            the network is built only for what needs its encoder (a new user).
        rated: every user's rated movies; None derives them from the graph's edges
            plus `heldout` (user, movie index columns of the validation and test ratings).
    """

    def __init__(
        self,
        users: pd.DataFrame,
        movies: pd.DataFrame,
        *,
        module: ServedNetwork | RatingPredictor | None = None,
        load_module: Callable[[dict[str, torch.Tensor]], ServedNetwork] | None = None,
        tensors: dict[str, torch.Tensor] | None = None,
        load_tensors: Callable[[], dict[str, torch.Tensor]] | None = None,
        tables: ScoringTables | None = None,
        rated: RatedMovies | None = None,
        heldout: pd.DataFrame | None = None,
    ):
        if module is None and load_module is None:
            raise ValueError("TrainedModel needs a module or a load_module function")
        if tensors is None and load_tensors is None:
            raise ValueError("TrainedModel needs tensors or a load_tensors function")
        self._module, self._load_module = module, load_module
        self._tensors, self._load_tensors = tensors, load_tensors
        self._rated, self._heldout = rated, heldout
        self.users = users
        self.movies = movies
        self.tables = tables
        self._user_ids = users["userId"].to_numpy()
        self._movie_ids = movies["movieId"].to_numpy()

    @classmethod
    def load(cls, directory: str | Path, build_network: bool = True) -> TrainedModel:
        """Restore a bundle on CPU, after checking every file against its manifest; a
        missing or damaged file is a `DataError` naming it.

        Args:
            build_network: build the network now (a server checks every file at start);
                False builds it (and reads graph.pt) only when something needs it, if
                the bundle has scoring tables (the recommend command: no torch import
                for a known user).
        """
        directory = Path(directory)
        check_manifest(directory, REQUIRED)
        tables = None
        if (directory / SCORING).is_file():
            tables = ScoringTables.load(directory / SCORING)
        checkpoint = directory / CHECKPOINT
        model = cls(
            _read_table(directory / USERS),
            _read_table(directory / MOVIES),
            load_module=lambda tensors: _served(checkpoint, tensors),
            load_tensors=lambda: _read_tensors(directory / GRAPH),
            tables=tables,
            rated=RatedMovies.load(directory / RATED),
        )
        if build_network or tables is None:
            _ = model.module
        return model

    @classmethod
    def from_split(cls, module: RatingPredictor, split: SplitData, data: RatingsData):
        """`module` over the `split` of `data` it was trained on (no bundle)."""
        from movierec.data.graph import graph_tensors

        module.set_graph(split.graph)
        tensors = graph_tensors(split.graph)
        heldout = _heldout_pairs(split)
        return cls(data.users, data.movies, module=module, tensors=tensors, heldout=heldout)

    @cached_property
    def tensors(self) -> dict[str, torch.Tensor]:
        """The training message graph's tensors (graph.pt, read on first use)."""
        return self._tensors if self._tensors is not None else self._load_tensors()

    @cached_property
    def module(self) -> ServedNetwork | RatingPredictor:
        """The network in eval mode with its graph (built on first use from a bundle)."""
        module = self._module if self._module is not None else self._load_module(self.tensors)
        return module.eval()

    @property
    def rating_scale(self) -> tuple[float, float]:
        if self.tables is not None:
            return self.tables.rating_scale
        return self.module.schema.rating_scale

    @property
    def predicts_ratings(self) -> bool:
        """Whether the model predicts stars (False: it only ranks, e.g. LightGCN)."""
        if self.tables is not None:
            return self.tables.predicts_ratings
        return self.module.net.predicts_ratings

    @property
    def ranks_by_score(self) -> bool:
        """Whether the model ranks by a score of its own and rates in stars besides."""
        if self.tables is not None:
            return self.tables.ranks_by_score
        return bool(self.module.net.ranks_by_score)

    @property
    def network_name(self) -> str:
        """The network's class name (e.g. SageNet), for messages."""
        if self.tables is not None:
            return self.tables.network
        return type(self.module.net).__name__

    def clamp(self, rating: np.ndarray) -> np.ndarray:
        low, high = self.rating_scale
        return np.clip(rating, low, high)

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
        users, movies = self.user_index(user_ids), self.movie_index(movie_ids)
        if len(users) != len(movies):
            raise DataError(f"got {len(users)} userIds but {len(movies)} movieIds")
        return self.clamp(self.rate_pairs(users, movies)).astype(np.float64)

    def rate_pairs(
        self, users: np.ndarray, movies: np.ndarray, embeddings: NodeEmbeddings | None = None
    ) -> np.ndarray:
        """Unclamped predicted stars of (user, movie) index pairs (B,), float32; a new
        user's from `embeddings` (the tables' or the encoded graph's by default)."""
        if self.tables is not None and embeddings is None:
            rating = self.tables.score_pairs(users, movies)
        else:
            import torch

            with torch.no_grad():
                pairs = torch.from_numpy(users), torch.from_numpy(movies)
                embeddings = embeddings if embeddings is not None else self.embeddings
                rating = self.module.net.decode(embeddings, *pairs).rating.float().numpy()
        return rating

    # ------------------------------------------------------------------ ranking

    @cached_property
    def embeddings(self) -> NodeEmbeddings:
        """Node embeddings of the training graph as torch tensors, encoded once per
        loaded model (a new user's encoding starts from them)."""
        import torch

        from movierec.models.base import NodeEmbeddings

        if self.tables is not None:
            return NodeEmbeddings(
                torch.from_numpy(self.tables.user), torch.from_numpy(self.tables.movie)
            )
        with torch.no_grad():
            return self.module.net.encode(self.module.graph)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Unclamped predicted stars (or ranking scores) of every movie for user indices
        (B,): (B, n_movies) float32."""
        users = np.asarray(users, dtype=np.int64)
        if self.tables is not None:
            return self.tables.score_users(users)
        import torch

        with torch.no_grad():  # a plug-in's override may not disable gradients itself
            scores = self.module.net.score_users(self.embeddings, torch.from_numpy(users))
        return scores.float().cpu().numpy()

    @cached_property
    def rated(self) -> RatedMovies:
        """Movies each user has rated: training edges plus held-out (val/test) ratings."""
        if self._rated is not None:
            return self._rated
        return _rated_movies(self.tensors, self._heldout, self.n_users, self.n_movies)

    @cached_property
    def popularity(self) -> Popularity:
        """The popularity baseline of this model's training ratings."""
        from movierec.ranking.popularity import Popularity

        edges, stars = self.tensors["edge_index"], self.tensors["edge_label"]
        return Popularity.from_ratings(edges[1], stars, self.n_movies)


def _served(checkpoint: Path, tensors: dict[str, torch.Tensor]) -> ServedNetwork:
    from movierec.serving.network import ServedNetwork

    return ServedNetwork.from_checkpoint(checkpoint, tensors, key="bundle")


def _rated_movies(
    tensors: dict[str, torch.Tensor], heldout: pd.DataFrame | None, n_users: int, n_movies: int
) -> RatedMovies:
    """The training edges of `tensors` plus the `heldout` (user, movie) index pairs."""
    user, movie = (part.cpu().numpy() for part in tensors["edge_index"])
    if heldout is not None and len(heldout):
        user = np.concatenate([user, heldout["user"].to_numpy(np.int64)])
        movie = np.concatenate([movie, heldout["movie"].to_numpy(np.int64)])
    return RatedMovies.from_pairs(user, movie, n_users, n_movies)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    import torch

    from movierec.training.checkpoints import UNREADABLE

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE as err:
        raise _damaged(path, err) from None


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise _damaged(path, err) from None


def _heldout_pairs(split: SplitData) -> pd.DataFrame:
    """User and movie indices (int32) of the validation and test ratings."""
    parts = [split.rows(part) for part in ("val", "test")]
    return pd.DataFrame(
        {
            "user": np.concatenate([p[0].numpy() for p in parts]).astype(np.int32),
            "movie": np.concatenate([p[1].numpy() for p in parts]).astype(np.int32),
        }
    )
