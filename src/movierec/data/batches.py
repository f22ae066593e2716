"""Mini-batches of supervision ratings, sharded across DDP ranks.

Batches are slices of in-memory tensors (no per-item collation), which keeps a 25M-rating
epoch cheap. Lightning's automatic `DistributedSampler` only handles map-style datasets
indexed item by item, so sharding is done here: every rank draws the same seeded
permutation for the epoch and takes a disjoint, equally long slice of it (training pads
by wrapping around, as `DistributedSampler` does, so all ranks step the same number of
times; evaluation does not pad, so no rating is counted twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset


class RatingBatches(IterableDataset):
    """Yields `(user, movie, rating)` int64/int64/float32 tensors of up to `batch_size` rows.

    Args:
        user, movie, rating: (N,) tensors of the supervision ratings.
        batch_size: rows per batch; 0 means the whole (per-rank) set in one batch.
        shuffle: "auto" = reshuffle every epoch when there is more than one batch (a
            full batch is the same set of rows in any order, so it keeps the split's
            order: no 20M-row permutation and copies at ML-25M, and rows stay in user
            order, which sparse pair scoring exploits); True = reshuffle every epoch even
            a full batch (the order changes how float sums round: the seed designs pin
            it to repeat their recorded numbers); False = never.
        seed: base seed of the per-epoch permutation.
        epoch: returns the current epoch (the trainer's), so a resumed run reshuffles
            exactly as the uninterrupted one would.
    """

    def __init__(
        self,
        user: torch.Tensor,
        movie: torch.Tensor,
        rating: torch.Tensor,
        *,
        batch_size: int = 0,
        shuffle: bool | str = False,
        seed: int = 0,
        epoch: Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        self.user, self.movie, self.rating = user, movie, rating
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch or (lambda: 0)

    def __len__(self) -> int:
        rows = self._rows_per_rank(*_rank_and_world())
        if rows == 0:
            return 0
        return 1 if self.batch_size <= 0 else -(-rows // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        rank, world = _rank_and_world()
        n = len(self.rating)
        shuffle = self._shuffles(n)
        if not shuffle and world == 1:  # in order on one process: views, no copies
            step = n if self.batch_size <= 0 else self.batch_size
            for start in range(0, n, max(step, 1)):
                part = slice(start, start + step)
                yield self.user[part], self.movie[part], self.rating[part]
            return
        if shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch())
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        if world > 1:
            if shuffle:  # pad so every rank gets the same number of rows
                total = self._rows_per_rank(rank, world) * world
                order = torch.cat([order, order[: total - n]]) if total > n else order
            order = order[rank::world]
        step = len(order) if self.batch_size <= 0 else self.batch_size
        for start in range(0, len(order), max(step, 1)):
            index = order[start : start + step]
            yield self.user[index], self.movie[index], self.rating[index]

    def _shuffles(self, n: int) -> bool:
        if self.shuffle == "auto":
            return 0 < self.batch_size < n
        return bool(self.shuffle)

    def _rows_per_rank(self, rank: int, world: int) -> int:
        n = len(self.rating)
        if world == 1:
            return n
        if self._shuffles(n):
            return -(-n // world)
        return len(range(rank, n, world))


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
