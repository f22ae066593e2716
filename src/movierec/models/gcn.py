"""`GcnNet`: the GCN family — input embeddings, GCNConv blocks over users and movies as
one node set, a pair decoder.

Users and movies form one node set (movies offset by n_users), so GCNConv's symmetric
normalization runs over the bipartite adjacency:

    single / weighted:  h' = Â h W,  Â = D^-1/2 (A + I) D^-1/2, A's entries 1 or the
                        normalized rating (a bottom-of-scale rating then has weight 0;
                        the self loop still keeps every node's own state);
    per_rating:         h' = Σ_r Â_r h W_r + h W_0,  Â_r = D^-1/2 A_r D^-1/2 with the
                        level-r ratings A_r and D the degree over all levels (GC-MC's
                        normalization), W_0 the node's own state.

Each block is GCNConv → [BatchNorm1d] → ReLU → Dropout (the Spark design: 3 blocks, with
batch norm). The normalized adjacency is built once per graph and reused by every layer
and step, as per-edge weights or as a sparse CSR matrix (`model.net.message_passing`,
see `adjacency`). The defaults are the Spark design (`experiment=seed_spark_gcn`);
conf/model/gcn.yaml holds the strongest variant found.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_torch_csr_tensor

from movierec.data.graph import RATES, GraphSchema
from movierec.models.adjacency import (
    MessageGraph,
    TransposeAware,
    compact,
    csr_matrix,
    full_precision,
    sparse_dtype,
    transposed,
    with_transpose,
)
from movierec.models.base import NodeEmbeddings, RatingNet
from movierec.models.decoders import (
    check_bias,
)
from movierec.models.encoder_heads import EncoderHeads
from movierec.models.inputs import NodeInput
from movierec.models.layers import (
    check_encoder_settings,
    combine_layers,
    combined_width,
    node_dropout,
    relation_edges,
)

# One relation's normalized adjacency: (edge_index, weight) or (CSR matrix, None).
Adjacency = tuple[torch.Tensor, torch.Tensor | None]


class SymmetricGCNConv(TransposeAware, GCNConv):
    """PyG's `GCNConv` on an adjacency it may differentiate through itself (every
    adjacency here is symmetric, see `adjacency.TransposeAware`)."""


class LevelGCNConv(nn.Module):
    """h' = Σ_r GCNConv_r(h, Â_r) + Linear(h): one GCNConv per relation plus the node's
    own state; x (N, d_in) → (N, d_out)."""

    def __init__(self, in_channels: int, out_channels: int, n_relations: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            SymmetricGCNConv(in_channels, out_channels, normalize=False, bias=False)
            for _ in range(n_relations)
        )
        self.root = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor, adjacency: list[Adjacency]) -> torch.Tensor:
        out = self.root(x)
        for conv, (edges, weight) in zip(self.convs, adjacency, strict=True):
            out = out + conv(x, edges, weight)
        return out


class GcnNet(EncoderHeads, RatingNet):
    """GCN rating model.

    Args:
        schema: data sizes.
        hidden: width of the input embeddings and GCN layers.
        num_layers: GCNConv blocks (the Spark design, `experiment=seed_spark_gcn`: 3).
        dropout: dropout after every block.
        id_embeddings: add learned per-node embeddings to the feature projections.
        decoder_hidden: widths of the MLP decoder's hidden layers.
        message_passing: auto | sparse | edges (see `movierec.models.adjacency`).
        relations: single | weighted | per_rating (see `movierec.models.layers`).
        combine: last | residual | mean | concat (see `movierec.models.layers`).
        batch_norm: BatchNorm1d in every block (the Spark design).
        node_dropout: rate of GC-MC node dropout on the input embeddings.
        decoder, bias, n_basis, ranking, ranking_dim, ranking_weight, ranking_negatives:
            the heads on the encoded tables (`EncoderHeads.attach_heads`).
    """

    supported_losses = ("huber", "mse", "l1")

    def __init__(
        self,
        schema: GraphSchema,
        hidden: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        id_embeddings: bool = True,
        decoder_hidden: list[int] | None = None,
        message_passing: str = "auto",
        relations: str = "per_rating",
        combine: str = "concat",
        batch_norm: bool = False,
        node_dropout: float = 0.0,
        decoder: str = "dot",
        bias: bool = True,
        n_basis: int = 2,
        ranking: str = "none",
        ranking_dim: int = 64,
        ranking_weight: float = 1.0,
        ranking_negatives: int = 4,
    ) -> None:
        super().__init__(schema)
        check_encoder_settings(
            hidden, num_layers, dropout, node_dropout, message_passing, relations, combine
        )
        check_bias(bias, decoder)
        self.input = NodeInput(schema, hidden, id_embeddings, key="model.net")
        n_levels = len(schema.rating_levels)
        # normalization happens once per graph (`message_graph`), not in every layer call
        self.convs = nn.ModuleList(
            LevelGCNConv(hidden, hidden, n_levels)
            if relations == "per_rating"
            else SymmetricGCNConv(hidden, hidden, normalize=False)
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(hidden) if batch_norm else nn.Identity() for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.relations = relations
        self.combine = combine
        self.node_dropout = node_dropout
        self.message_graph = MessageGraph(message_passing, "sum", self._normalized)
        self.attach_heads(
            schema, combined_width(hidden, num_layers, combine), decoder,
            decoder_hidden if decoder_hidden is not None else [hidden, hidden // 2 or 1],
            n_basis, bias, (ranking, ranking_dim, ranking_weight, ranking_negatives),
        )  # fmt: skip

    def new_user_refusal(self) -> str:
        return (
            "it is transductive: its normalized adjacency is built over the training "
            "graph's node counts, so it encodes only that graph"
        )

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        x = self.input(graph)
        n_users = x["user"].shape[0]
        h = node_dropout(torch.cat([x["user"], x["movie"]]), self.node_dropout, self.training)
        with self.message_graph.passing(h.device) as sparse:
            h = full_precision(h) if sparse else h
            adjacency = self.message_graph.get(graph, sparse, h.dtype)
            outputs = [h]
            for conv, norm_layer in zip(self.convs, self.norms, strict=True):
                if self.relations == "per_rating":
                    out = conv(h, adjacency)
                else:
                    out = conv(h, *adjacency[0])
                out = self.dropout(norm_layer(out).relu())
                h = h + out if self.combine == "residual" else out
                outputs.append(h)
        z = combine_layers(outputs, self.combine)
        return NodeEmbeddings(z[:n_users], z[n_users:])

    def prepare(self, graph: HeteroData) -> None:
        """The sparse path's adjacency (the per-edge path builds little worth moving)."""
        self.message_graph.prepare(graph, sparse_dtype(self))

    def _normalized(self, graph: HeteroData, sparse: bool, dtype: torch.dtype) -> list[Adjacency]:
        """Per relation, the normalized adjacency over users ∪ movies: ((2, E')
        edge_index, (E',) weights) or (sparse CSR (N, N), None)."""
        n_users, n_nodes = self.schema.n_users, self.schema.n_users + self.schema.n_movies
        parts = relation_edges(
            graph, RATES, self.relations, self.rating_class, len(self.schema.rating_levels)
        )
        if self.relations != "per_rating":
            ((edges, weight),) = parts
            return [_gcn_normalized(_symmetric(edges, weight, n_users), n_nodes, sparse, dtype)]
        # D over all levels: a node's level-r messages are scaled by its total degree
        users, movies = graph[RATES].edge_index
        degree = torch.bincount(torch.cat([users, movies + n_users]), minlength=n_nodes)
        scale = degree.clamp(min=1).float().rsqrt()
        adjacency = []
        for edges, _ in parts:
            edge_index, _ = _symmetric(edges, None, n_users)
            weight = scale[edge_index[0]] * scale[edge_index[1]]
            adjacency.append(_as_adjacency(edge_index, weight, n_nodes, sparse, dtype))
        return adjacency


def _symmetric(
    edges: torch.Tensor, weight: torch.Tensor | None, n_users: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(2, E) user→movie ratings as both directions over users ∪ movies, (2, 2E)."""
    users, movies = edges[0], edges[1] + n_users
    edge_index = torch.stack([torch.cat([users, movies]), torch.cat([movies, users])])
    return edge_index, None if weight is None else torch.cat([weight, weight])


def _gcn_normalized(
    symmetric: tuple[torch.Tensor, torch.Tensor | None], n_nodes: int, sparse: bool, dtype
) -> Adjacency:
    """D^-1/2 (A + I) D^-1/2 by PyG's `gcn_norm`."""
    edge_index, weight = symmetric
    if sparse:  # the graph is symmetric, so A = A^T and no flip is needed
        adj = to_torch_csr_tensor(edge_index, weight, size=(n_nodes, n_nodes))
        adj = compact(gcn_norm(adj, None, n_nodes, add_self_loops=True)[0].to(dtype))
        if weight is None:  # d_i^-1/2 · d_j^-1/2: bit-for-bit symmetric
            return with_transpose(adj), None
        # (d_i^-1/2 · w) · d_j^-1/2 and (d_j^-1/2 · w) · d_i^-1/2 may differ in the last
        # bit: the true transpose, built once, keeps the gradients torch's own
        return with_transpose(adj, transposed(adj)), None
    edge_index, weight = gcn_norm(edge_index, weight, n_nodes, add_self_loops=True)
    return edge_index, weight.to(dtype)


def _as_adjacency(
    edge_index: torch.Tensor, weight: torch.Tensor, n_nodes: int, sparse: bool, dtype
) -> Adjacency:
    if sparse:
        adj = csr_matrix(edge_index, weight, (n_nodes, n_nodes)).to(dtype)
        return with_transpose(adj), None  # symmetric: both directions, w_ij = w_ji
    return edge_index, weight.to(dtype)
