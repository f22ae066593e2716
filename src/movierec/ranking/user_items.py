"""`UserItems`: a set of movies per user (compressed rows), turned into (B, n_movies) masks.

Used for "movies the user has already rated" (excluded from recommendations and from the
ranking candidates) and "movies relevant to the user in the test split".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class UserItems:
    """Movies of user u are `movie[offsets[u]:offsets[u + 1]]`.

    Attributes:
        offsets: (n_users + 1,) int64, non-decreasing.
        movie: (nnz,) int64 movie indices, grouped by user.
        n_movies: width of the masks.
    """

    offsets: torch.Tensor
    movie: torch.Tensor
    n_movies: int

    @classmethod
    def from_pairs(
        cls, user: torch.Tensor, movie: torch.Tensor, n_users: int, n_movies: int
    ) -> UserItems:
        """From (N,) user and movie index tensors (duplicates are harmless)."""
        user, movie = user.long().cpu(), movie.long().cpu()
        order = torch.argsort(user, stable=True)
        counts = torch.bincount(user, minlength=n_users)
        offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        return cls(offsets, movie[order], n_movies)

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    def count(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) number of movies of each user."""
        users = users.cpu()
        return self.offsets[users + 1] - self.offsets[users]

    def users_with_items(self) -> torch.Tensor:
        """Indices of the users that have at least one movie, ascending."""
        return torch.nonzero(self.offsets[1:] > self.offsets[:-1]).flatten()

    def of(self, user: int) -> torch.Tensor:
        """Movie indices of one user."""
        return self.movie[self.offsets[user] : self.offsets[user + 1]]

    def pairs(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The movies of `users` (B,) as (P,) row positions in `users` and (P,) movie
        indices, row by row: the non-zeros of `mask(users)` without the (B, n_movies)."""
        users = users.long().cpu()
        starts = self.offsets[users]
        counts = self.offsets[users + 1] - starts
        rows = torch.repeat_interleave(torch.arange(len(users)), counts)
        # position of every selected entry in `movie`: its row's start + its rank in the row
        first = torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        positions = torch.repeat_interleave(starts, counts) + torch.arange(len(rows)) - first
        return rows, self.movie[positions]

    def mask(self, users: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """(B, n_movies) bool: True where row b's user has the movie."""
        rows, movies = self.pairs(users)
        mask = torch.zeros(len(users), self.n_movies, dtype=torch.bool)
        mask[rows, movies] = True
        return mask if device is None else mask.to(device)
