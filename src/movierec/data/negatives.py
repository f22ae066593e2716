"""Negative movies for ranking losses: uniform draws, optionally never a movie the user rated.

BPR pushes a user's rated movie above movies "the user did not pick". Drawing those
uniformly from every movie now and then draws a movie the user rated (on ml-100k's u1
split, 6 % of the (user, movie) cells are rated, and the popular movies, which are drawn
as often as any other, are rated by most users), which then is pushed down as a negative.
`RatedPairs` holds the training graph's (user, movie) pairs as one sorted int64 key per
pair, key = user · n_movies + movie, and `draw_unrated` redraws every negative whose key
is there, as the LightGCN paper's sampler, RecBole's and PyG's examples do.
"""

from __future__ import annotations

import torch

#: redraw rounds for the draws that hit a rated movie; each round keeps a fraction p (the
#: user's share of rated movies) of them, and those left after the rounds (users who rated
#: nearly every movie) are drawn exactly among their unrated movies, one by one
MAX_ROUNDS = 10


class RatedPairs:
    """The (user, movie) pairs of a graph as sorted keys, for membership tests.

    Args:
        user, movie: (E,) int64 indices of the pairs (e.g. the training edges).
        n_movies: size of the movie index space (keys are user · n_movies + movie).
    """

    def __init__(self, user: torch.Tensor, movie: torch.Tensor, n_movies: int) -> None:
        self.n_movies = int(n_movies)
        keys = user.to(torch.int64) * self.n_movies + movie.to(torch.int64)
        self.keys = torch.unique(keys)  # sorted

    def contains(self, user: torch.Tensor, movie: torch.Tensor) -> torch.Tensor:
        """(…,) bool: whether each (user, movie) pair (broadcast shapes) is one of the pairs."""
        keys = user.to(torch.int64) * self.n_movies + movie.to(torch.int64)
        if not len(self.keys):
            return torch.zeros_like(keys, dtype=torch.bool)
        position = torch.searchsorted(self.keys, keys).clamp_(max=len(self.keys) - 1)
        return self.keys[position] == keys

    def unrated_movie(self, user: int, fallback: torch.Tensor) -> torch.Tensor:
        """One movie drawn uniformly among those `user` did not rate (`fallback` if none).

        With the user's rated movies s_0 < s_1 < … the r-th unrated movie is
        r + #{k : s_k − k ≤ r}."""
        start = torch.searchsorted(self.keys, torch.tensor(user * self.n_movies))
        stop = torch.searchsorted(self.keys, torch.tensor((user + 1) * self.n_movies))
        movies = self.keys[start:stop] - user * self.n_movies
        free = self.n_movies - len(movies)
        if not free:
            return fallback
        r = torch.randint(free, ())
        shifted = movies - torch.arange(len(movies))
        return (r + torch.searchsorted(shifted, r, right=True)).to(fallback.dtype)


def draw_uniform(n_positives: int, n_negatives: int, n_movies: int, device) -> torch.Tensor:
    """(B, N) movie indices drawn uniformly from all `n_movies` (one flat call: N = 1 keeps
    the draws of a (B,) call); int32 where ids fit, half the memory of int64."""
    dtype = torch.int32 if n_movies < 2**31 else torch.int64
    negative = torch.randint(n_movies, (n_positives * n_negatives,), device=device, dtype=dtype)
    return negative.view(n_positives, n_negatives)


def draw_unrated(user: torch.Tensor, n_negatives: int, rated: RatedPairs) -> torch.Tensor:
    """(B, N) movies drawn uniformly among those `user` (B,) did not rate in `rated` (a
    user who rated every movie keeps uniform draws: there is nothing else to draw).

    The first draw is `draw_uniform`'s; draws that hit a rated movie are drawn again."""
    negative = draw_uniform(len(user), n_negatives, rated.n_movies, user.device)
    pair_user = user.unsqueeze(1).expand_as(negative)
    hit = rated.contains(pair_user, negative)
    for _ in range(MAX_ROUNDS):
        n_hits = int(hit.sum())
        if not n_hits:
            return negative
        redraw = torch.randint(
            rated.n_movies, (n_hits,), device=negative.device, dtype=negative.dtype
        )
        negative[hit] = redraw
        hit[hit.clone()] = rated.contains(pair_user[hit], redraw)
    for row, column in hit.nonzero().tolist():
        negative[row, column] = rated.unrated_movie(int(user[row]), negative[row, column])
    return negative
