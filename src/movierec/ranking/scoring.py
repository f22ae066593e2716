"""Ranking users in blocks: a `Scorer` maps user indices (B,) to scores (B, n_movies).

A trained network's scorer is its own `RatingNet.score_users` over embeddings encoded
once; the popularity baseline has one too. This module never asks which it holds. Each
block is scored once; `TopKRanking.update` ranks it once, to the largest K of `ranking.k`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # torch (2-3 s) and torchmetrics: the recommend path imports neither
    import torch

    from movierec.ranking.metrics import TopKRanking
    from movierec.ranking.user_items import UserItems

Scorer = Callable[["torch.Tensor"], "torch.Tensor"]
Indices = TypeVar("Indices")  # a torch.Tensor or a numpy array of indices

#: (user, movie) pairs decoded per call: bounds the memory of MLP decoders, which
#: materialise a (pairs, 2·hidden) input (2^18 pairs × 128 floats ≈ 128 MiB).
PAIR_BUDGET = 2**18


def user_chunks(users: Indices, n_movies: int, pair_budget: int = PAIR_BUDGET) -> Iterator[Indices]:
    """Consecutive slices of `users` (a tensor or an array) with at most `pair_budget`
    pairs each (≥ 1 user)."""
    step = max(1, pair_budget // max(n_movies, 1))
    for start in range(0, len(users), step):
        yield users[start : start + step]


def evaluate_ranking(
    scorer: Scorer,
    users: torch.Tensor,
    exclude: UserItems,
    relevant: UserItems,
    metric: TopKRanking,
    pair_budget: int = PAIR_BUDGET,
) -> None:
    """Update `metric` with `users`' rankings: candidates = movies not in `exclude`.

    At most `pair_budget` scores (one block of users × every movie) exist at a time.
    """
    for chunk in user_chunks(users, exclude.n_movies, pair_budget):
        metric.update_pairs(scorer(chunk), exclude.pairs(chunk), relevant.pairs(chunk), chunk)
