"""A trained model packaged with what it needs to answer in original IDs.

A bundle is a folder:
    model.ckpt       the Lightning checkpoint (network config, schema, weights)
    graph.pt         the training message graph's tensors (`graph_tensors`)
    users.parquet    row i: userId of user index i (+ side columns)
    movies.parquet   row j: movieId, title, genres of movie index j
`TrainedModel.load(bundle)` restores it on CPU; `predict_ratings` maps original
userId/movieId pairs to clamped predicted ratings in stars.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from movierec.data.graph import graph_from_tensors, graph_tensors
from movierec.data.processed import RatingsData, lookup_ids
from movierec.errors import DataError
from movierec.models.module import RatingPredictor

CHECKPOINT = "model.ckpt"
GRAPH = "graph.pt"
USERS = "users.parquet"
MOVIES = "movies.parquet"


def save_bundle(directory: Path, checkpoint: str | Path, datamodule) -> Path:
    """Write a bundle for the model at `checkpoint` trained on `datamodule`'s split."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, directory / CHECKPOINT)
    torch.save(graph_tensors(datamodule.graph), directory / GRAPH)
    data: RatingsData = datamodule.data
    data.users.to_parquet(directory / USERS, index=False)
    data.movies.to_parquet(directory / MOVIES, index=False)
    return directory


class TrainedModel:
    """A loaded bundle: the network in eval mode, its graph and the ID maps."""

    def __init__(self, module: RatingPredictor, users: pd.DataFrame, movies: pd.DataFrame):
        self.module = module.eval()
        self.users = users
        self.movies = movies
        self._user_ids = users["userId"].to_numpy()
        self._movie_ids = movies["movieId"].to_numpy()

    @classmethod
    def load(cls, directory: str | Path) -> TrainedModel:
        directory = Path(directory)
        module = RatingPredictor.load_from_checkpoint(directory / CHECKPOINT, map_location="cpu")
        module.set_graph(graph_from_tensors(torch.load(directory / GRAPH, weights_only=True)))
        return cls(module, pd.read_parquet(directory / USERS), pd.read_parquet(directory / MOVIES))

    @property
    def rating_scale(self) -> tuple[float, float]:
        return self.module.schema.rating_scale

    def user_index(self, user_ids) -> np.ndarray:
        return lookup_ids(self._user_ids, user_ids, "userId")

    def movie_index(self, movie_ids) -> np.ndarray:
        return lookup_ids(self._movie_ids, movie_ids, "movieId")

    def predict_ratings(self, user_ids, movie_ids) -> np.ndarray:
        """Predicted stars (float64, clamped to the scale) for original id pairs, shape (B,)."""
        users = torch.from_numpy(self.user_index(user_ids))
        movies = torch.from_numpy(self.movie_index(movie_ids))
        if len(users) != len(movies):
            raise DataError(f"got {len(users)} userIds but {len(movies)} movieIds")
        return self.module.predict_pairs(users, movies).double().numpy()
