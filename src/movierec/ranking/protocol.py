"""The ranking test protocol: who is ranked, over which movies, and what counts as a hit.

For each test user:
    candidates = every movie (graph node) the user has not rated in the ratings training
                 saw: the train split and the validation split (used for early stopping
                 and model selection), so the ranked list is what the system would show
                 at test time;
    relevant   = the user's test movies rated ≥ `relevant_rating` stars (the same
                 threshold on half-star scales);
    users      = the users with at least one relevant test movie.

The validation protocol (`stage="val"`, for selecting checkpoints on a ranking metric) is
the same one step earlier: candidates exclude the train split only, relevant = the
user's validation movies rated ≥ `relevant_rating`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from movierec.data.split_data import SplitData
from movierec.ranking.user_items import UserItems

#: A test rating at or above this many stars makes the movie relevant.
RELEVANT_RATING = 4.0


@dataclass(frozen=True)
class RankingProtocol:
    """Exclusions, relevant movies and the users to rank.

    Attributes:
        exclude: movies each user rated in train or val (never candidates).
        relevant: movies each user rated ≥ the threshold in test.
        users: (U,) int64 user indices with ≥ 1 relevant movie, ascending.
    """

    exclude: UserItems
    relevant: UserItems
    users: torch.Tensor

    @classmethod
    def from_split(
        cls, split: SplitData, relevant_rating: float = RELEVANT_RATING, stage: str = "test"
    ) -> RankingProtocol:
        """Built from one fold's rows: `stage` "test" ranks against the test split (train
        and val excluded), "val" against the validation split (train excluded)."""
        if stage not in ("val", "test"):
            raise ValueError(f"stage={stage!r}: expected 'val' or 'test'")
        n_users, n_movies = split.n_users, split.n_movies
        seen = ("train",) if stage == "val" else ("train", "val")
        seen_rows = [split.rows(name) for name in seen]
        exclude = UserItems.from_pairs(
            torch.cat([user for user, _, _ in seen_rows]),
            torch.cat([movie for _, movie, _ in seen_rows]),
            n_users,
            n_movies,
        )
        user, movie, rating = split.rows(stage)
        hit = rating >= relevant_rating
        relevant = UserItems.from_pairs(user[hit], movie[hit], n_users, n_movies)
        return cls(exclude, relevant, relevant.users_with_items())

    def sample(self, n_users: int, seed: int = 0) -> RankingProtocol:
        """This protocol over `n_users` of its users drawn at random (fixed by `seed`, so
        every epoch ranks the same ones, ascending); all of them when n_users is 0 or
        at least their number. Validation ranking at ML-25M scale scores every movie
        for each ranked user: a fixed sample keeps that to seconds per epoch."""
        if n_users <= 0 or n_users >= len(self.users):
            return self
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(len(self.users), generator=generator)[:n_users]
        return RankingProtocol(self.exclude, self.relevant, self.users[chosen.sort().values])

    def shard(self, rank: int, world_size: int) -> torch.Tensor:
        """This DDP rank's users: every `world_size`-th one, so each user is ranked once."""
        return self.users[rank::world_size]
