"""`GcmcNet`: rating-type-aware graph auto-encoder (GC-MC, van den Berg, Kipf & Welling 2017).

Each rating level r has its own message weights, so "rated 1" and "rated 5" neighbours
say different things:

    h_u = σ( acc_r Σ_{m ∈ N_r(u)} c_um W_r[m] ),      z_u = W_d h_u (+ W_f σ(W_s x_u))
    W_r = Σ_{s ≤ r} T_s                                  (ordinal weight sharing)
    P(r | u, m) = softmax_r(z_u^T Q_r z_m),  Q_r = Σ_b a_rb P_b,  r̂ = Σ_r P(r) · r

The input is the one-hot node identity, so W_r[m] is a learned row per movie (and per user
in the other direction). Messages are sparse matrix products per level (no per-edge
message tensor); node dropout drops whole source nodes' messages as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import HeteroData

from movierec.checks import check_choice, check_fraction, check_positive
from movierec.data.graph import RATES, GraphSchema
from movierec.models.adjacency import MessageGraph
from movierec.models.base import NodeEmbeddings, RatingNet, RatingScores
from movierec.models.decoders import build_decoder, decoder_args
from movierec.models.heads import DecoderHead

ACCUMULATIONS = ("sum", "stack")
NORMALIZATIONS = ("symmetric", "left")


class GcmcNet(RatingNet):
    """GC-MC encoder + bilinear softmax decoder.

    Args:
        schema: data sizes and rating levels.
        hidden: width of the graph-convolution output (split across levels for "stack").
        out: width of the final node embeddings fed to the decoder.
        dropout: node dropout on the messages' sources.
        accumulation: "sum" over levels or "stack" (concatenate) them.
        norm: "symmetric" 1/sqrt(|N(u)||N(m)|) or "left" 1/|N(u)| message normalization.
        n_basis: shared bases of the bilinear decoder.
        side_features: add a dense side-feature branch from `graph[*].x` when present.
        side_hidden: width of that branch.
    """

    supported_losses = ("cross_entropy", "mse", "huber")

    def __init__(
        self,
        schema: GraphSchema,
        hidden: int = 500,
        out: int = 75,
        dropout: float = 0.7,
        accumulation: str = "sum",
        norm: str = "symmetric",
        n_basis: int = 2,
        side_features: bool = False,
        side_hidden: int = 10,
    ) -> None:
        super().__init__(schema)
        for key, value in (("hidden", hidden), ("out", out), ("side_hidden", side_hidden)):
            check_positive(f"model.net.{key}", value)
        check_fraction("model.net.dropout", dropout)
        check_choice("model.net.accumulation", accumulation, ACCUMULATIONS)
        check_choice("model.net.norm", norm, NORMALIZATIONS)
        n_levels = len(schema.rating_levels)
        per_level = hidden if accumulation == "sum" else max(1, hidden // n_levels)
        width = per_level if accumulation == "sum" else per_level * n_levels
        self.movie_messages = nn.Parameter(torch.empty(n_levels, schema.n_movies, per_level))
        self.user_messages = nn.Parameter(torch.empty(n_levels, schema.n_users, per_level))
        self.user_dense = nn.Linear(width, out, bias=False)
        self.movie_dense = nn.Linear(width, out, bias=False)
        self.side = nn.ModuleDict()
        if side_features:
            for kind, dim in (("user", schema.user_dim), ("movie", schema.movie_dim)):
                if dim > 0:
                    self.side[kind] = nn.Sequential(
                        nn.Linear(dim, side_hidden),
                        nn.ReLU(),
                        nn.Linear(side_hidden, out, bias=False),
                    )
        self.decoder_args = decoder_args("softmax", out, schema, [], n_basis)
        self.decoder = build_decoder(**self.decoder_args)
        self.dropout = dropout
        self.accumulation = accumulation
        self.norm = norm
        # The message graph is fixed during training; rebuilding its per-level sparse
        # adjacency every step would cost more than the convolution itself. Always sparse
        # products (its own, per level), float32 values whatever the parameters' dtype.
        self.message_graph = MessageGraph("sparse", "sum", lambda graph, *_: self._levels(graph))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.movie_messages.view(-1, self.movie_messages.shape[-1]))
        nn.init.xavier_uniform_(self.user_messages.view(-1, self.user_messages.shape[-1]))
        self.user_dense.reset_parameters()
        self.movie_dense.reset_parameters()
        self.decoder.reset_parameters()

    def new_user_refusal(self) -> str:
        return (
            "it learns message weights per training user and sizes its per-level adjacency "
            "by the training user count"
        )

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        to_users, to_movies = self.message_graph.get(graph, True, None)
        # ordinal weight sharing: level r uses the sum of the level weights up to r
        movie_w = self._node_dropout(self.movie_messages.cumsum(dim=0))
        user_w = self._node_dropout(self.user_messages.cumsum(dim=0))
        # the sparse products stay in float32 under mixed precision: torch.sparse.mm's
        # backward does not mix an autocast bf16/fp16 gradient with float32 values
        with torch.autocast(movie_w.device.type, enabled=False):
            user_parts = [torch.sparse.mm(a, w) for a, w in zip(to_users, movie_w, strict=True)]
            movie_parts = [torch.sparse.mm(a, w) for a, w in zip(to_movies, user_w, strict=True)]
        if self.accumulation == "sum":
            h_user, h_movie = sum(user_parts), sum(movie_parts)
        else:
            h_user, h_movie = torch.cat(user_parts, dim=1), torch.cat(movie_parts, dim=1)
        z_user = self.user_dense(F.relu(h_user))
        z_movie = self.movie_dense(F.relu(h_movie))
        if "user" in self.side:
            z_user = z_user + self.side["user"](graph["user"].x)
        if "movie" in self.side:
            z_movie = z_movie + self.side["movie"](graph["movie"].x)
        return NodeEmbeddings(z_user, z_movie)

    def decode(
        self, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> RatingScores:
        rating, logits = self.decoder(embeddings.user, embeddings.movie, user, movie)
        return RatingScores(rating, logits)

    def scoring_head(self) -> DecoderHead:
        return DecoderHead.sharing(self.decoder_args, self.decoder, None)

    def _node_dropout(self, weights: torch.Tensor) -> torch.Tensor:
        """Drop all messages of a random subset of source nodes, (L, n, d) → (L, n, d)."""
        if not self.training or self.dropout == 0:
            return weights
        keep = torch.rand(weights.shape[1], 1, device=weights.device) >= self.dropout
        return weights * keep / (1 - self.dropout)

    def prepare(self, graph: HeteroData) -> None:
        self.message_graph.prepare(graph, None)

    def _levels(self, graph: HeteroData) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Normalized sparse adjacency per rating level: user←movie and movie←user."""
        store = graph[RATES]
        users, movies = store.edge_index
        level = self.rating_class(store.edge_label)
        n_users, n_movies = self.schema.n_users, self.schema.n_movies
        deg_u = torch.bincount(users, minlength=n_users).clamp_(min=1).float()
        deg_m = torch.bincount(movies, minlength=n_movies).clamp_(min=1).float()
        if self.norm == "symmetric":
            coef_u = coef_m = (deg_u[users] * deg_m[movies]).rsqrt()
        else:
            coef_u, coef_m = deg_u[users].reciprocal(), deg_m[movies].reciprocal()
        to_users, to_movies = [], []
        for r in range(len(self.schema.rating_levels)):
            mask = level == r
            u, m = users[mask], movies[mask]
            to_users.append(_sparse(u, m, coef_u[mask], (n_users, n_movies)))
            to_movies.append(_sparse(m, u, coef_m[mask], (n_movies, n_users)))
        return to_users, to_movies


def _sparse(row: torch.Tensor, col: torch.Tensor, value: torch.Tensor, size) -> torch.Tensor:
    return torch.sparse_coo_tensor(
        torch.stack([row, col]), value, size, check_invariants=False
    ).coalesce()
