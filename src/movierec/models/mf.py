"""`BiasedMF`: the baseline every GNN must beat.

r̂(u, m) = μ + b_u + b_m + p_u · q_m, with μ the mean training rating and an L2 penalty
λ (‖p_u‖² + ‖q_m‖² + b_u² + b_m²) on the pairs of each batch (classic SGD-style MF
regularization, added to the loss by the LightningModule).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from movierec.checks import check_positive
from movierec.data.graph import GraphSchema
from movierec.models.base import NodeEmbeddings, RatingNet, RatingScores, embedding_rows
from movierec.models.heads import BiasedDotHead, biased_dot

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData


class BiasedMF(RatingNet):
    """Biased matrix factorization.

    Args:
        schema: data sizes.
        dim: latent factors per user/movie.
        init_std: std of the normal factor initialisation.
        reg: L2 penalty λ on the factors and biases of each batch's pairs.
    """

    def __init__(
        self, schema: GraphSchema, dim: int = 64, init_std: float = 0.01, reg: float = 0.1
    ) -> None:
        super().__init__(schema)
        check_positive("model.net.dim", dim)
        self.user_factors = nn.Embedding(schema.n_users, dim)
        self.movie_factors = nn.Embedding(schema.n_movies, dim)
        self.user_bias = nn.Embedding(schema.n_users, 1)
        self.movie_bias = nn.Embedding(schema.n_movies, 1)
        self.register_buffer("mean", torch.tensor(float(schema.mean_rating)))
        self.init_std = init_std
        self.reg = reg
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_factors.weight, std=self.init_std)
        nn.init.normal_(self.movie_factors.weight, std=self.init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.movie_bias.weight)

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        """MF ignores the graph: embeddings are [p ‖ b] per node, (n, dim + 1)."""
        return NodeEmbeddings(
            torch.cat([self.user_factors.weight, self.user_bias.weight], dim=1),
            torch.cat([self.movie_factors.weight, self.movie_bias.weight], dim=1),
        )

    def decode(
        self, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> RatingScores:
        return RatingScores(biased_dot(self.mean, embeddings.user[user], embeddings.movie[movie]))

    def scoring_head(self) -> BiasedDotHead:
        return BiasedDotHead(float(self.mean))

    def new_user_refusal(self) -> None:
        return None  # fold-in, see embed_new_user

    @torch.no_grad()
    def embed_new_user(
        self,
        graph: HeteroData,
        embeddings: NodeEmbeddings,
        movies: torch.Tensor,
        stars: torch.Tensor,
    ) -> tuple[NodeEmbeddings, int]:
        """Fold-in: the user's [p_u ‖ b_u] solve the training objective with every movie
        parameter fixed, a ridge regression
            min Σ_j (r_j − μ − b_j − [q_j ‖ 1]·x)² + n·λ‖x‖²
        over the n given ratings (each rating adds λ‖x‖² in training)."""
        movie_rows = embeddings.movie[movies].double()  # (N, dim + 1): [q_j ‖ b_j]
        design = torch.cat([movie_rows[:, :-1], torch.ones_like(movie_rows[:, :1])], dim=1)
        target = stars.double() - float(self.mean) - movie_rows[:, -1]
        penalty = len(stars) * float(self.reg) * torch.eye(design.shape[1], dtype=torch.float64)
        solution = torch.linalg.solve(design.T @ design + penalty, design.T @ target)
        user = torch.cat([embeddings.user, solution.to(embeddings.user.dtype).unsqueeze(0)])
        return NodeEmbeddings(user, embeddings.movie), len(user) - 1

    def regularization(self, user: torch.Tensor, movie: torch.Tensor) -> torch.Tensor:
        """λ · mean over the batch of the squared norms of the pairs' parameters."""
        terms = (
            embedding_rows(self.user_factors, user).pow(2).sum(-1)
            + embedding_rows(self.movie_factors, movie).pow(2).sum(-1)
            + embedding_rows(self.user_bias, user).squeeze(-1).pow(2)
            + embedding_rows(self.movie_bias, movie).squeeze(-1).pow(2)
        )
        return self.reg * terms.mean()
