"""Scoring heads: the part of a network after its encoder, as a module of its own.

A head maps the node tables z_user (n_users, d) and z_movie (n_movies, d) and index pairs
user, movie (B,) to (rating (B,), logits (B, L) or None), exactly as the network's
`decode` does: the network and its head share the modules and the functions below, so
their arithmetic is the same. A network offers its head through
`RatingNet.scoring_head()`; a bundle stores the head's `spec` and weights beside the node
tables encoded once (`serving.snapshot`), and `serving.numpy_heads` evaluates them from
the spec without torch, so a known user is ranked without building the network.

    head = net.scoring_head()
    head.score_users(z_user, z_movie, users)   # (B, n_movies)
    head.spec                                   # {"head": "DecoderHead", "decoder": {...}, ...}
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from movierec.models.base import pair_scores
from movierec.models.decoders import DecoderOutput, PairBias, build_decoder, decode_with_bias
from movierec.models.pair_dot import pair_dot
from movierec.models.ranking_output import RankingOutput


class ScoringHead(nn.Module):
    """Base class. `spec` holds the keyword arguments that describe it (`serving.numpy_heads`
    evaluates a head from its spec and weights)."""

    def __init__(self, **spec: Any) -> None:
        super().__init__()
        self.spec = {"head": type(self).__name__, **spec}

    def forward(self, z_user, z_movie, user, movie) -> DecoderOutput:
        raise NotImplementedError

    @torch.no_grad()
    def score_users(
        self, z_user: torch.Tensor, z_movie: torch.Tensor, users: torch.Tensor
    ) -> torch.Tensor:
        """Score of every movie for each user index, (B, n_movies): all B × n_movies pairs
        decoded in one call (`RatingNet.score_users`'s default; callers bound B)."""
        return pair_scores(self, z_user, z_movie, users)


class DecoderHead(ScoringHead):
    """A `models.decoders` decoder plus optional learned offsets b_u + b_m (SAGE, GCN,
    GC-MC), and optionally a second output its networks rank by (`models.ranking_output`):
    `forward` gives the rating, `score_users` the ranking score when there is one.

    Args:
        decoder: `build_decoder`'s keyword arguments.
        bias: (n_users, n_movies) of the `PairBias` tables, or None.
        ranking: {"width", "dim", "n_movies"} of the `RankingOutput`, or None.
    """

    def __init__(
        self,
        decoder: dict[str, Any],
        bias: list[int] | None = None,
        ranking: dict[str, int] | None = None,
        *,
        shared: tuple[nn.Module, PairBias | None, RankingOutput | None] | None = None,
    ) -> None:
        super().__init__(
            decoder=dict(decoder),
            bias=list(bias) if bias else None,
            ranking=dict(ranking) if ranking else None,
        )
        if shared is not None:  # a network's own modules (`sharing`): no new weights
            self.decoder, self.bias, self.ranking = shared
        else:
            self.decoder = build_decoder(**decoder)
            self.bias = PairBias(*bias) if bias else None
            self.ranking = RankingOutput(**ranking, weight=1.0, negatives=1) if ranking else None

    @classmethod
    def sharing(
        cls,
        decoder_args: dict[str, Any],
        decoder: nn.Module,
        bias: PairBias | None,
        ranking: RankingOutput | None = None,
    ) -> DecoderHead:
        """The head over a network's `decoder` (built by `build_decoder(**decoder_args)`),
        `bias` and `ranking` output, sharing their weights."""
        shape = [bias.user.num_embeddings, bias.movie.num_embeddings] if bias else None
        ranking_spec = None
        if ranking is not None:
            width, dim = ranking.user.in_features, ranking.user.out_features
            ranking_spec = {"width": width, "dim": dim, "n_movies": ranking.n_movies}
        return cls(decoder_args, shape, ranking_spec, shared=(decoder, bias, ranking))

    def forward(self, z_user, z_movie, user, movie) -> DecoderOutput:
        return decode_with_bias(self.decoder, self.bias, z_user, z_movie, user, movie)

    @torch.no_grad()
    def score_users(self, z_user, z_movie, users) -> torch.Tensor:
        if self.ranking is None:
            return super().score_users(z_user, z_movie, users)
        return self.ranking.grid(z_user, z_movie, users)


def biased_dot(mean: torch.Tensor, zu: torch.Tensor, zm: torch.Tensor) -> torch.Tensor:
    """μ + b_u + b_m + p_u · q_m for gathered rows [p ‖ b] (B, d + 1), (B,)."""
    return mean + zu[:, -1] + zm[:, -1] + (zu[:, :-1] * zm[:, :-1]).sum(dim=-1)


class BiasedDotHead(ScoringHead):
    """Biased MF's r̂ = μ + b_u + b_m + p_u · q_m on tables [p ‖ b] (n, d + 1)."""

    def __init__(self, mean: float) -> None:
        super().__init__(mean=float(mean))
        self.register_buffer("mean", torch.tensor(float(mean)))

    def forward(self, z_user, z_movie, user, movie) -> DecoderOutput:
        return biased_dot(self.mean, z_user[user], z_movie[movie]), None


def dot_scores(z_user: torch.Tensor, z_movie: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
    """e_u · e_m of every movie for each user: one (B, d) × (d, n_movies) product."""
    return z_user[users.to(z_user.device)] @ z_movie.T


class DotHead(ScoringHead):
    """A plain dot product e_u · e_m, a ranking score (LightGCN)."""

    def forward(self, z_user, z_movie, user, movie) -> DecoderOutput:
        return pair_dot(z_user, z_movie, user, movie), None

    @torch.no_grad()
    def score_users(self, z_user, z_movie, users) -> torch.Tensor:
        return dot_scores(z_user, z_movie, users)
