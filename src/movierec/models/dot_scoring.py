"""`ScoresByDot`: the scoring of a net whose score of (u, m) is the dot product of its
encoded tables, ŝ(u, m) = z_u · z_m (LightGCN and its contrastive variants, EASE)."""

from __future__ import annotations

import torch

from movierec.models.base import NodeEmbeddings, RatingScores
from movierec.models.heads import dot_scores
from movierec.models.pair_dot import pair_dot


class ScoresByDot:
    """Mixin of a `RatingNet` (listed before it): pairs by a sampled product, every movie
    for a block of users by one (B, d) × (d, n_movies) product, BPR fused (`dot_bpr`)."""

    scores_by_dot = True

    def decode(
        self, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> RatingScores:
        """ŝ(u, m) = z_u · z_m for B pairs: a ranking score, not stars."""
        return RatingScores(pair_dot(embeddings.user, embeddings.movie, user, movie))

    @torch.no_grad()
    def score_users(self, embeddings: NodeEmbeddings, users: torch.Tensor) -> torch.Tensor:
        """Every movie's score for each user, (B, n_movies)."""
        return dot_scores(embeddings.user, embeddings.movie, users)
