"""Tiny in-memory datasets and their training graphs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch_geometric.data import HeteroData

from movierec.data.graph import GraphSchema, build_graph
from movierec.data.processed import RatingsData
from movierec.data.splits import RandomSplit


def synthetic_ratings(n_users: int, n_movies: int, n_ratings: int, seed: int) -> RatingsData:
    """A small in-memory `RatingsData` with random unique pairs, stars and timestamps."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_movies, size=n_ratings, replace=False)
    stars = rng.integers(1, 11, size=n_ratings).astype(np.float32) / 2
    ratings = pd.DataFrame(
        {
            "user": pairs // n_movies,
            "movie": pairs % n_movies,
            "rating": stars,
            "rating_norm": (stars - 0.5) / 4.5,
            "timestamp": rng.integers(0, 10_000, size=n_ratings),
        }
    )
    genres = ["Action", "Comedy", "Drama"]
    movies = pd.DataFrame(
        {
            "movieId": np.arange(n_movies) * 10 + 1,
            "title": [f"m{i}" for i in range(n_movies)],
            "genres": [genres[i % 3] for i in range(n_movies)],
        }
    )
    users = pd.DataFrame({"userId": np.arange(n_users) + 1})
    return RatingsData(ratings, users, movies, genres, (0.5, 5.0), {"dataset": "synthetic"})


def synthetic_train_graph(
    n_users: int, n_movies: int, n_ratings: int, seed: int
) -> tuple[HeteroData, GraphSchema]:
    """The train-split message graph (random split, seed 0) of `synthetic_ratings`, and its
    schema on the 0.5–5 star scale."""
    data = synthetic_ratings(n_users, n_movies, n_ratings, seed)
    graph = build_graph(data, RandomSplit(seed=0).assign(data).train)
    return graph, GraphSchema.from_graph(graph, (0.5, 5.0))


#: the SAGE and GCN settings that test a mechanism on its plainest variant (one relation,
#: the last layer, an MLP decoder, no second output), whatever the families' defaults
PLAIN_NETS = {
    "SageNet": dict(
        num_layers=2,
        id_embeddings=False,
        relations="single",
        combine="last",
        norm="left",
        decoder="mlp",
        bias=False,
        ranking="none",
    ),
    "GcnNet": dict(
        num_layers=3,
        dropout=0.2,
        id_embeddings=False,
        relations="weighted",
        combine="last",
        batch_norm=True,
        decoder="mlp",
        bias=False,
    ),
}


def plain_net(cls, schema, **kwargs):
    """`cls(schema, ...)` on `PLAIN_NETS`' settings (none for other nets), `kwargs`
    overriding them."""
    return cls(schema, **{**PLAIN_NETS.get(cls.__name__, {}), **kwargs})
