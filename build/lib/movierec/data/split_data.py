"""`SplitData`: what a training loop needs from the data, as one typed object.

The DataModule builds it once per process in `setup`; the LightningModule, the ranking
protocol and the serving bundle read it instead of the DataModule's own attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch_geometric.data import HeteroData

from movierec.data.graph import GraphSchema

PARTS = ("train", "val", "test")


class Rows(NamedTuple):
    """One split part's ratings: user, movie (int64 indices) and rating (float32 stars),
    each (N,)."""

    user: torch.Tensor
    movie: torch.Tensor
    rating: torch.Tensor


@dataclass(frozen=True)
class SplitData:
    """One fold of one dataset.

    Attributes:
        graph: the message graph, built from the training ratings only.
        schema: sizes, feature widths and rating levels models are built for.
        parts: "train" | "val" | "test" → that part's `Rows`.
        loader: "full" (rating batches over the whole graph) | "neighbor" (sampled
            subgraphs, which only inductive networks can encode).
    """

    graph: HeteroData
    schema: GraphSchema
    parts: dict[str, Rows]
    loader: str = "full"

    def rows(self, part: str) -> Rows:
        if part not in self.parts:
            raise ValueError(f"part={part!r}: expected one of {', '.join(PARTS)}")
        return self.parts[part]

    @property
    def n_users(self) -> int:
        return self.schema.n_users

    @property
    def n_movies(self) -> int:
        return self.schema.n_movies
