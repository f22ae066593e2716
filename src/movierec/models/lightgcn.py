"""`LightGcnNet`: LightGCN (He et al., SIGIR 2020) for top-K recommendation, over PyG's
`torch_geometric.nn.models.LightGCN`.

Users and movies form one node set (movies offset by n_users) with a learned layer-0
embedding E⁰ each and no features. K `LGConv` layers propagate them linearly over the
training ratings' bipartite adjacency with symmetric normalisation and no self loops,

    E^(k+1) = D^-1/2 A D^-1/2 E^(k),        E = Σ_k α_k E^(k),  α_k = 1/(K + 1),

and a (user, movie) pair scores ŝ(u, m) = e_u · e_m. The score only orders movies (it is
no rating in stars), so the model declares itself ranking-only: it trains with BPR
(`model.objective.loss=bpr`, see `movierec.objective`), logs no RMSE/MAE, and its served model
answers only top-K requests. The normalised adjacency is built once per graph and reused
by every layer and step, as per-edge weights or as a sparse CSR matrix
(`model.net.message_passing`, see `adjacency`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import LGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.nn.models import LightGCN

from movierec.checks import check_choice, check_positive
from movierec.data.graph import RATES, GraphSchema
from movierec.errors import ConfigError
from movierec.models.adjacency import (
    MESSAGE_PASSING,
    MessageGraph,
    add_column_blocks,
    csr_matrix,
    product,
    with_transpose,
)
from movierec.models.base import NodeEmbeddings, RatingNet
from movierec.models.dot_scoring import ScoresByDot
from movierec.models.heads import DotHead


class LightGcnNet(ScoresByDot, RatingNet):
    """LightGCN ranking model.

    Args:
        schema: data sizes.
        dim: embedding size of every user and movie.
        num_layers: propagation layers K (the layer outputs 0..K are averaged).
        reg: L2 penalty λ on the layer-0 embeddings of each batch's pairs, as in the paper:
            λ · mean over the batch of (‖e⁰_u‖² + ‖e⁰_m‖²) (the sampled negatives are
            not counted; uniform draws would only add a near-constant decay on every
            movie).
        message_passing: auto | sparse | edges (see `movierec.models.adjacency`).
    """

    supported_losses = ("bpr",)
    predicts_ratings = False
    inductive = False
    # score_users is one product: 4M scores (16 MB) per block, 16× the default, so ML-25M's
    # 59k movies are ranked for 71 users at a time instead of 4 (per-block costs dominated)
    ranking_block_pairs = 2**22

    def __init__(
        self,
        schema: GraphSchema,
        dim: int = 64,
        num_layers: int = 3,
        reg: float = 1e-4,
        message_passing: str = "auto",
    ) -> None:
        super().__init__(schema)
        check_positive("model.net.dim", dim)
        check_positive("model.net.num_layers", num_layers)
        check_choice("model.net.message_passing", message_passing, MESSAGE_PASSING)
        if not isinstance(reg, (int, float)) or isinstance(reg, bool) or reg < 0:
            raise ConfigError(f"model.net.reg={reg!r}: expected ≥ 0 (0 = no L2 penalty)")
        # normalisation happens once per graph (`message_graph`), not in every layer call
        self.lightgcn = LightGCN(schema.n_users + schema.n_movies, dim, num_layers, normalize=False)
        # PyG's own layers, used on the per-edge path (the sparse path propagates by blocks)
        self.lightgcn.convs = nn.ModuleList(LGConv(normalize=False) for _ in range(num_layers))
        self.reg = float(reg)
        # the per-edge path's gcn_norm is worth building ahead too
        self.message_graph = MessageGraph(
            message_passing, "sum", self._normalized, prepare_edges=True
        )

    def new_user_refusal(self) -> str:
        return (
            "it is transductive: every user is a free embedding learned for the training "
            "users, so it encodes only them"
        )

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        """E = Σ_k α_k (D^-1/2 A D^-1/2)^k E⁰ over users ∪ movies (PyG's `get_embedding`
        on the per-edge path; the same sums by bipartite blocks on the sparse path)."""
        weight = self.lightgcn.embedding.weight
        n_users = self.schema.n_users
        with self.message_graph.passing(weight.device) as sparse:
            adjacency = self.message_graph.get(graph, sparse, weight.dtype)
            if sparse:
                return self._propagate_by_blocks(*adjacency)
            z = self.lightgcn.get_embedding(*adjacency)
        return NodeEmbeddings(z[:n_users], z[n_users:])

    def prepare(self, graph: HeteroData) -> None:
        self.message_graph.prepare(graph, self.lightgcn.embedding.weight.dtype)

    def _propagate_by_blocks(self, to_user: torch.Tensor, to_movie: torch.Tensor):
        """PyG's get_embedding with Â = [[0, Â_um], [Â_um^T, 0]] applied as its two blocks.

        The (N, N) product reads every user's row while filling movies' rows and the
        reverse; two bipartite products (users × movies, movies × users) compute the same
        sums with a third less time on ML-25M (one (N, N) layer 1.49 s, the blocks 1.02 s).
        """
        x = self.lightgcn.embedding.weight
        alpha = self.lightgcn.alpha
        x_user, x_movie = x[: self.schema.n_users], x[self.schema.n_users :]
        out_user, out_movie = x_user * alpha[0], x_movie * alpha[0]
        for layer in range(self.lightgcn.num_layers):
            x_user, x_movie = product(to_user, x_movie, "sum"), product(to_movie, x_user, "sum")
            out_user = out_user + x_user * alpha[layer + 1]
            out_movie = out_movie + x_movie * alpha[layer + 1]
        return NodeEmbeddings(out_user, out_movie)

    def _normalized(self, graph: HeteroData, sparse: bool, dtype: torch.dtype) -> tuple:
        """D^-1/2 A D^-1/2 of the training graph (A symmetric, no self loops) with `dtype`
        values: ((2, 2E) edge_index, (2E,) weights) over users ∪ movies, or its two
        blocks as CSR matrices (users × movies, movies × users), each the other's
        transpose."""
        n_users, n_movies = self.schema.n_users, self.schema.n_movies
        users, movies = graph[RATES].edge_index
        if not sparse:
            edge_index = torch.stack([torch.cat([users, movies + n_users]),
                                      torch.cat([movies + n_users, users])])  # fmt: skip
            n_nodes = n_users + n_movies
            edge_index, weight = gcn_norm(edge_index, None, n_nodes, add_self_loops=False)
            return edge_index, weight.to(dtype)
        # gcn_norm's weight of (u, m), deg_u^-1/2 · deg_m^-1/2 (the same in both blocks),
        # computed as it does, without building the (2, 2E) symmetric edge index
        user_scale = torch.bincount(users, minlength=n_users).float().pow(-0.5)
        movie_scale = torch.bincount(movies, minlength=n_movies).float().pow(-0.5)
        weight = (user_scale[users] * movie_scale[movies]).to(dtype)
        forward = torch.stack([users, movies])
        to_user = csr_matrix(forward, weight, (n_users, n_movies))
        to_movie = csr_matrix(forward.flip(0), weight, (n_movies, n_users))
        # every product multiplies an (n, dim) table of this dtype
        row_bytes = self.lightgcn.embedding.weight.shape[1] * weight.element_size()
        add_column_blocks(to_user, row_bytes)
        add_column_blocks(to_movie, row_bytes)
        return with_transpose(to_user, to_movie), with_transpose(to_movie, to_user)

    def scoring_head(self) -> DotHead:
        return DotHead()

    def regularization(self, user: torch.Tensor, movie: torch.Tensor) -> torch.Tensor:
        """λ · mean over the batch of ‖e⁰_u‖² + ‖e⁰_m‖² (layer-0 embeddings)."""
        if not self.reg:
            return torch.zeros((), device=user.device)
        # Σ_b ‖e⁰_{u_b}‖² as Σ_u count_u ‖e⁰_u‖²: the same sum without gathering a (B, d)
        # copy of the rows (5 GB for a full batch of 20M ratings)
        table = self.lightgcn.embedding.weight
        n_users = self.schema.n_users
        counts = torch.bincount(torch.cat([user, movie + n_users]), minlength=len(table))
        return self.reg * (counts.to(table.dtype) @ table.pow(2).sum(-1)) / len(user)
