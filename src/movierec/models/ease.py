"""`EaseNet`: EASE (Steck, WWW 2019), the closed-form item–item model, as the ranking
baseline every GNN ranker is shown against.

With X the (n_users, n_movies) 0/1 matrix of the training ratings (every rated movie is an
interaction) and an L2 weight λ,

    P = (XᵀX + λI)⁻¹,    B = I − P · diag(1 / diag(P))    (so diag(B) = 0),

and user u's scores are the row X_u B: a movie scores by how the movies the user rated
predict it. No gradient step is taken (`trains_by_gradient = False`): each training
"epoch" solves for one λ of `lambdas` in turn, validation ranks with it, and the
checkpoint of the best epoch holds the λ chosen on validation (B itself is recomputed from
the graph, not stored: n_movies² floats). The solve is O(min(n_users, n_movies)³): where
users are fewer than movies (ml-100k, ml-latest-small) P comes from the Woodbury identity

    P = (I − Xᵀ (λI + XXᵀ)⁻¹ X) / λ,

so only a users × users system is solved. Scores are the dot products of the tables
X (users) and Bᵀ (movies), so ranking is one product and a new user is scored from the
row of movies they rated, with nothing to fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch_geometric.data import HeteroData

from movierec.data.graph import RATES, GraphSchema
from movierec.errors import ConfigError
from movierec.models.base import NodeEmbeddings, RatingNet
from movierec.models.dot_scoring import ScoresByDot

#: largest item–item matrix EASE builds (n_movies²), float32: 2.4 GB at 25,000 movies
MAX_MOVIES = 25_000


class EaseNet(ScoresByDot, RatingNet):
    """EASE ranking baseline.

    Args:
        schema: data sizes.
        lambdas: the L2 weights λ tried, one per training epoch in this order (the last
            repeats if training runs longer); selection keeps the best on validation.
        positive_rating: X holds only the training ratings ≥ this many stars (None: every
            rating is an interaction).
    """

    supported_losses = ("none",)
    predicts_ratings = False
    trains_by_gradient = False
    ranking_block_pairs = 2**22

    def __init__(
        self,
        schema: GraphSchema,
        lambdas: Sequence[float] = (25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0),
        positive_rating: float | None = None,
    ) -> None:
        super().__init__(schema)
        lambdas = tuple(lambdas) if isinstance(lambdas, Sequence) else (lambdas,)
        if not lambdas or any(
            not isinstance(x, (int, float)) or isinstance(x, bool) or x <= 0 for x in lambdas
        ):
            raise ConfigError(
                f"model.net.lambdas={list(lambdas)!r}: expected a list of L2 weights > 0"
            )
        if schema.n_movies > MAX_MOVIES:
            raise ConfigError(
                f"model=ease builds a {schema.n_movies:,} × {schema.n_movies:,} item–item "
                f"matrix; it supports at most {MAX_MOVIES:,} movies (use model=lightgcn)"
            )
        self.lambdas = tuple(float(x) for x in lambdas)
        self.positive_rating = positive_rating
        # the λ in use: a buffer, so the best epoch's checkpoint carries the chosen one
        self.register_buffer("l2", torch.tensor(self.lambdas[0], dtype=torch.float64))
        self._tables: tuple | None = None  # ((edge storage, length, λ), NodeEmbeddings)

    def start_epoch(self, epoch: int) -> None:
        self.l2.fill_(self.lambdas[min(epoch, len(self.lambdas) - 1)])

    def new_user_refusal(self) -> None:
        return None  # a new user is the row of movies they rated

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        """Tables X (n_users, n_movies) and Bᵀ (n_movies, n_movies) for the current λ,
        solved once per graph and λ."""
        edges = graph[RATES].edge_index
        key = (edges.data_ptr(), edges.shape[1], float(self.l2))
        if self._tables is None or self._tables[0] != key:
            self._tables = None  # free the old matrices first
            interactions = self._interactions(edges, graph[RATES].edge_label)
            weights = ease_weights(interactions, float(self.l2))
            self._tables = (key, NodeEmbeddings(interactions, weights.T))
        return self._tables[1]

    def _interactions(self, edges: torch.Tensor, stars: torch.Tensor) -> torch.Tensor:
        """X: (n_users, n_movies) float32, 1 where the user rated the movie (≥
        `positive_rating` stars where set)."""
        n_users, n_movies = self.schema.n_users, self.schema.n_movies
        matrix = torch.zeros(n_users, n_movies, device=self.l2.device)
        if self.positive_rating is not None:
            edges = edges[:, stars >= self.positive_rating]
        matrix[edges[0], edges[1]] = 1.0
        return matrix

    @torch.no_grad()
    def embed_new_user(self, graph, embeddings, movies, stars):
        """The new user's row of X: 1 on the movies they rated (stars are not used)."""
        row = torch.zeros(1, embeddings.user.shape[1], device=embeddings.user.device)
        row[0, movies] = 1.0
        return NodeEmbeddings(torch.cat([embeddings.user, row]), embeddings.movie), len(
            embeddings.user
        )


def ease_weights(interactions: torch.Tensor, l2: float) -> torch.Tensor:
    """EASE's B (n_movies, n_movies) for X = `interactions` (n_users, n_movies) and λ = `l2`:
    B = I − P diag(1/diag P), P = (XᵀX + λI)⁻¹, i.e. B_ij = −P_ij / P_jj, diag B = 0.

    The system is solved in float64 on the smaller side. With fewer users than movies,
    P = (I − XᵀKX)/λ, K = (λI + XXᵀ)⁻¹, so B_ij = (XᵀKX)_ij / (1 − (XᵀKX)_jj): the
    movies × movies product runs in X's dtype (float32: half the time at ml-latest-small)
    and only its diagonal, where 1 − (XᵀKX)_jj may cancel, in float64."""
    x = interactions.to(torch.float64)
    n_users, n_movies = x.shape
    if n_users < n_movies:  # Woodbury: only a users × users system
        kx = torch.linalg.solve(x @ x.T + l2 * torch.eye(n_users, dtype=x.dtype), x)
        explained = x.T.to(interactions.dtype) @ kx.to(interactions.dtype)  # XᵀKX
        weights = explained / (1.0 - (x * kx).sum(0)).to(interactions.dtype)
    else:
        precision = torch.linalg.inv(x.T @ x + l2 * torch.eye(n_movies, dtype=x.dtype))
        weights = (-precision / precision.diagonal()).to(interactions.dtype)
    weights.diagonal().zero_()
    return weights
