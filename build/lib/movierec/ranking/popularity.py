"""The popularity baseline: what `fallback=popular` recommends and the benchmark's `popular` row.

Movies are ranked by their number of training ratings ("most popular", the standard
MostPop baseline of top-N evaluation), ties broken by the damped mean below. The rating
shown for a movie (and scored as the baseline's RMSE) is its damped mean rating

    r̄_m = (Σ_u r_um + α · μ) / (n_m + α),   α = `DAMPING` pseudo-ratings at the global mean μ,

so a movie rated 5 stars by one user is not taken at face value. Every user gets the same
ranking (minus the movies they rated); no training is involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: pseudo-ratings at the global mean added to every movie's mean rating
DAMPING = 10.0


@dataclass(frozen=True)
class Popularity:
    """Per-movie statistics of the training ratings.

    Attributes:
        count: (n_movies,) int64 number of training ratings.
        rating: (n_movies,) float32 damped mean rating in stars.
        score: (n_movies,) float32 ranking score (higher first): n_movies − rank.
    """

    count: torch.Tensor
    rating: torch.Tensor
    score: torch.Tensor

    @classmethod
    def from_ratings(
        cls,
        movie: torch.Tensor,
        rating: torch.Tensor,
        n_movies: int,
        damping: float = DAMPING,
    ) -> Popularity:
        """From the training ratings' (N,) movie indices and (N,) stars."""
        movie = movie.long().cpu()
        stars = rating.double().cpu()
        count = torch.bincount(movie, minlength=n_movies)
        total = torch.zeros(n_movies, dtype=torch.float64).index_add_(0, movie, stars)
        mean = stars.mean() if len(stars) else torch.tensor(0.0, dtype=torch.float64)
        damped = (total + damping * mean) / (count + damping)
        # np.lexsort: last key is primary → by count, then damped mean, then lower index
        order = np.lexsort((-np.arange(n_movies), damped.numpy(), count.numpy()))[::-1]
        score = torch.empty(n_movies, dtype=torch.float32)
        score[torch.from_numpy(order.copy())] = torch.arange(n_movies, 0, -1, dtype=torch.float32)
        return cls(count, damped.float(), score)

    def scorer(self, device: torch.device | str = "cpu"):
        """A `Scorer`: the same (B, n_movies) scores for every user."""
        score = self.score.to(device)
        return lambda users: score.expand(len(users), -1)
