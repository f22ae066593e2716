"""The machine's floor for sparse training: one torch CSR × dense product of a training
adjacency's shape, timed in the same run as what it is compared with (the scripts
`benchmark_scale.py` and `profile_epoch.py` print their epochs as multiples of it)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

WIDTH = 64  # the families' default hidden width


def csr_product_seconds(
    users: torch.Tensor, movies: torch.Tensor, n_users: int, n_movies: int, repeats: int = 5
) -> float:
    """Best-of-`repeats` seconds of CSR (n_users × n_movies, one entry per (user, movie)
    pair) @ dense (n_movies, 64) float32, after one untimed warm-up product."""
    indices = torch.stack([users.long(), movies.long()])
    adjacency = torch.sparse_coo_tensor(indices, torch.ones(len(users)), (n_users, n_movies))
    adjacency = adjacency.coalesce().to_sparse_csr()
    dense = torch.randn(n_movies, WIDTH)
    torch.sparse.mm(adjacency, dense)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.sparse.mm(adjacency, dense)
        best = min(best, time.perf_counter() - started)
    return best


def ratings_file_floor(ratings_csv: Path, train_fraction: float = 0.8, seed: int = 0) -> float:
    """The floor for a ratings CSV (userId, movieId first): its ids indexed densely and a
    seeded random `train_fraction` of its rows as the adjacency, the shape and number of
    entries of a random 80/10/10 split's training graph."""
    import numpy as np
    import pyarrow.csv as pv

    table = pv.read_csv(
        ratings_csv, convert_options=pv.ConvertOptions(include_columns=["userId", "movieId"])
    )
    user_ids, users = np.unique(table["userId"].to_numpy(), return_inverse=True)
    movie_ids, movies = np.unique(table["movieId"].to_numpy(), return_inverse=True)
    keep = np.random.default_rng(seed).random(len(users)) < train_fraction
    return csr_product_seconds(
        torch.from_numpy(users[keep]), torch.from_numpy(movies[keep]),
        len(user_ids), len(movie_ids),
    )  # fmt: skip
