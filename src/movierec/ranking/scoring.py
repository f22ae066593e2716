"""Scoring user × movie blocks with one decoder call, in chunks of users.

A `Scorer` maps user indices (B,) to scores (B, n_movies); a trained network's scorer
decodes every (user, movie) pair of the block at once from embeddings encoded once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from movierec.models.base import NodeEmbeddings, RatingNet
from movierec.ranking.metrics import TopKRanking
from movierec.ranking.user_items import UserItems

Scorer = Callable[[torch.Tensor], torch.Tensor]

#: (user, movie) pairs decoded per call: bounds the memory of MLP decoders, which
#: materialise a (pairs, 2·hidden) input (2^18 pairs × 128 floats ≈ 128 MiB).
PAIR_BUDGET = 2**18


@torch.no_grad()
def score_block(net: RatingNet, embeddings: NodeEmbeddings, users: torch.Tensor) -> torch.Tensor:
    """Unclamped predicted stars of every movie for each user, (B, n_movies).

    Ranking uses the unclamped value so movies predicted above the top of the scale stay
    ordered instead of tying at the maximum.
    """
    n_movies = embeddings.movie.shape[0]
    users = users.to(embeddings.user.device)
    movies = torch.arange(n_movies, device=users.device)
    pair_user = users.repeat_interleave(n_movies)
    pair_movie = movies.repeat(len(users))
    return net.decode(embeddings, pair_user, pair_movie).rating.view(len(users), n_movies)


def user_chunks(
    users: torch.Tensor, n_movies: int, pair_budget: int = PAIR_BUDGET
) -> Iterator[torch.Tensor]:
    """Consecutive slices of `users` with at most `pair_budget` pairs each (≥ 1 user)."""
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
    """Update `metric` with `users`' rankings: candidates = movies not in `exclude`."""
    for chunk in user_chunks(users, exclude.n_movies, pair_budget):
        scores = scorer(chunk)
        device = scores.device
        candidates = ~exclude.mask(chunk, device)
        metric.update(scores, candidates, relevant.mask(chunk, device))
