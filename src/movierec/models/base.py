"""The interface every rating network implements: encode the graph once, decode pairs.

Splitting `encode` from `decode` lets evaluation and recommendation encode the graph once
and score many (user, movie) pairs, e.g. every movie for one user.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.data import HeteroData

from movierec.data.graph import GraphSchema
from movierec.errors import ConfigError


@dataclass
class NodeEmbeddings:
    """Encoder output: user (n_users, d_user) and movie (n_movies, d_movie) float tensors."""

    user: torch.Tensor
    movie: torch.Tensor


@dataclass
class RatingScores:
    """Decoder output for B pairs.

    Attributes:
        rating: (B,) predicted rating in stars, not clamped (clamping kills gradients).
        logits: (B, L) scores over `schema.rating_levels` for classification decoders.
    """

    rating: torch.Tensor
    logits: torch.Tensor | None = None


class RatingNet(nn.Module):
    """Base class: `forward(graph, user, movie)` = `decode(encode(graph), user, movie)`."""

    #: losses this network can be trained with (the first is its default).
    supported_losses: tuple[str, ...] = ("mse", "huber", "l1")
    #: whether `encode` works on any subgraph (sampled batches, new nodes), not only the
    #: full training graph it was built for.
    inductive: bool = False

    def __init__(self, schema: GraphSchema) -> None:
        super().__init__()
        self.schema = schema

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        raise NotImplementedError

    def decode(
        self, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> RatingScores:
        raise NotImplementedError

    def forward(self, graph: HeteroData, user: torch.Tensor, movie: torch.Tensor) -> RatingScores:
        return self.decode(self.encode(graph), user, movie)

    def regularization(self, user: torch.Tensor, movie: torch.Tensor) -> torch.Tensor:
        """Extra loss term for a batch of pairs (0 unless a model defines one)."""
        return torch.zeros((), device=user.device)

    def rating_class(self, rating: torch.Tensor) -> torch.Tensor:
        """Index of each rating in `schema.rating_levels` (for classification losses), (B,)."""
        levels = self.schema.rating_levels
        step = levels[1] - levels[0] if len(levels) > 1 else 1.0
        index = torch.round((rating - levels[0]) / step).long()
        return index.clamp_(0, len(levels) - 1)


def check_positive(key: str, value: int | float) -> None:
    """Refuse zero/negative sizes with the config key in the message."""
    if not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{key}={value!r}: expected a positive number")


def check_fraction(key: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key}={value!r}: expected a dropout rate in [0, 1)")


def check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not valid; expected one of {', '.join(allowed)}")
