"""The cold-start protocol: rank for users the model never saw, from N of their ratings.

With `split=cold_start` (`data.splits.ColdStartSplit`) a set of users is held out
entirely: none of their ratings is in train or val. For each held-out user and each N
(1, 3, 5, 10), N of their ratings are drawn (seeded) and given to the model as a new
user's (`score_new_user`, e.g. `RatingNet.embed_new_user` then `score_users`); the model
ranks every movie but those N, and the user's other ratings ≥ the relevance threshold are
the relevant movies. Users with at most N ratings are skipped for that N. The metrics
are `TopKRanking`'s (NDCG@K, Recall@K, …), so they compare with the test metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from movierec.ranking.metrics import TopKRanking
from movierec.ranking.protocol import RELEVANT_RATING

#: (movies (N,) int64, stars (N,) float32) → (n_movies,) scores for that new user
NewUserScorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GIVEN = (1, 3, 5, 10)


def cold_start_metrics(
    score_new_user: NewUserScorer,
    user: np.ndarray,
    movie: np.ndarray,
    stars: np.ndarray,
    n_movies: int,
    given: Iterable[int] = GIVEN,
    k: int = 10,
    relevant_rating: float = RELEVANT_RATING,
    seed: int = 0,
) -> dict[int, dict[str, float]]:
    """{N: {"ndcg_at_10": …, "recall_at_10": …, "users": …}} over the held-out users.

    Args:
        user, movie, stars: (E,) the held-out users' ratings (the cold-start test split).
    """
    order = np.argsort(user, kind="stable")
    user, movie, stars = user[order], movie[order], stars[order]
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    blocks = np.split(np.arange(len(user)), starts[1:])
    results = {}
    for n in given:
        ranking, counted = TopKRanking(k, n_movies), 0
        rng = np.random.default_rng([seed, n])
        for rows in blocks:
            if len(rows) <= n:
                continue
            shown = rng.permutation(rows)
            kept, held = shown[:n], shown[n:]
            relevant = held[stars[held] >= relevant_rating]
            if not len(relevant):
                continue
            scores = score_new_user(
                torch.from_numpy(movie[kept].astype(np.int64)),
                torch.from_numpy(stars[kept].astype(np.float32)),
            ).reshape(1, n_movies)
            zeros = torch.zeros(n, dtype=torch.long)
            relevant_movies = torch.from_numpy(movie[relevant].astype(np.int64))
            ranking.update_pairs(
                scores.float(),
                (zeros, torch.from_numpy(movie[kept].astype(np.int64))),
                (torch.zeros_like(relevant_movies), relevant_movies),
            )
            counted += 1
        values = ranking.compute()
        results[n] = {
            f"ndcg_at_{k}": values[f"ndcg_at_{k}"],
            f"recall_at_{k}": values[f"recall_at_{k}"],
            "users": counted,
        }
    return results
