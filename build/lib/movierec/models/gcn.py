"""`GcnNet`: the Spark design — three GCNConv layers, each followed by BatchNorm1d, ReLU and
Dropout, over the bipartite graph with the normalized rating as edge weight, and fully
connected layers that regress the rating (trained with Huber loss).

Users and movies form one node set (movies offset by n_users) so GCNConv's symmetric
normalization D^-1/2 (A + I) D^-1/2 runs over the bipartite adjacency. A rating at the
bottom of the scale has weight 0 (the design's min-max normalization); the self loop
still keeps every node's own state. The normalized adjacency is computed once per graph
and reused by every layer and step, as per-edge weights or as a sparse CSR matrix
(`model.net.message_passing`, see `adjacency`).
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
    MESSAGE_PASSING,
    GraphCache,
    full_precision,
    sparse_messages_in_full_precision,
    use_sparse,
)
from movierec.models.base import (
    NodeEmbeddings,
    RatingNet,
    RatingScores,
    check_choice,
    check_fraction,
    check_positive,
)
from movierec.models.decoders import MlpDecoder
from movierec.models.inputs import NodeInput


class GcnNet(RatingNet):
    """GCN rating model.

    Args:
        schema: data sizes.
        hidden: width of the input embeddings and GCN layers.
        num_layers: GCNConv → BatchNorm1d → ReLU → Dropout blocks (the design uses 3).
        dropout: dropout after every block.
        edge_weight: use the normalized rating as edge weight (else 1 per edge).
        id_embeddings: add learned per-node embeddings to the feature projections.
        decoder_hidden: widths of the fully connected regression head.
        message_passing: auto | sparse | edges (see `movierec.models.adjacency`).
    """

    supported_losses = ("huber", "mse", "l1")

    def __init__(
        self,
        schema: GraphSchema,
        hidden: int = 64,
        num_layers: int = 3,
        dropout: float = 0.2,
        edge_weight: bool = True,
        id_embeddings: bool = False,
        decoder_hidden: list[int] | None = None,
        message_passing: str = "auto",
    ) -> None:
        super().__init__(schema)
        check_positive("model.net.hidden", hidden)
        check_choice("model.net.message_passing", message_passing, MESSAGE_PASSING)
        check_positive("model.net.num_layers", num_layers)
        check_fraction("model.net.dropout", dropout)
        self.input = NodeInput(schema, hidden, id_embeddings, key="model.net")
        # normalization happens once per graph in `_adjacency`, not in every layer call
        self.convs = nn.ModuleList(
            GCNConv(hidden, hidden, normalize=False) for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.edge_weight = edge_weight
        self.message_passing = message_passing
        self._adjacency_cache = GraphCache()
        self.decoder = MlpDecoder(
            2 * hidden,
            list(decoder_hidden) if decoder_hidden is not None else [hidden, hidden // 2 or 1],
            schema.mean_rating,
        )

    def new_user_refusal(self) -> str:
        return (
            "it is transductive: its normalized adjacency D^-1/2 (A + I) D^-1/2 is built "
            "over the training graph's node counts, so it encodes only that graph"
        )

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        x = self.input(graph)
        n_users = x["user"].shape[0]
        h = torch.cat([x["user"], x["movie"]])
        device = h.device
        sparse = use_sparse(self.message_passing, "sum", device)
        with sparse_messages_in_full_precision(device, sparse):
            h = full_precision(h) if sparse else h
            edges, weight = self._adjacency(graph, sparse, h.dtype)
            for conv, norm_layer in zip(self.convs, self.norms, strict=True):
                h = self.dropout(norm_layer(conv(h, edges, weight)).relu())
        return NodeEmbeddings(h[:n_users], h[n_users:])

    def _adjacency(
        self, graph: HeteroData, sparse: bool, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D^-1/2 (A + I) D^-1/2 over users ∪ movies (movies offset by n_users): either
        ((2, 2E + N) edge_index, (2E + N,) weights) or (sparse CSR (N, N), None), in `dtype`."""
        return self._adjacency_cache.get(
            graph, (sparse, dtype), lambda: self._normalized(graph, sparse, dtype)
        )

    def _normalized(
        self, graph: HeteroData, sparse: bool, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        n_users, n_nodes = self.schema.n_users, self.schema.n_users + self.schema.n_movies
        users, movies = graph[RATES].edge_index
        movies = movies + n_users
        edge_index = torch.stack([torch.cat([users, movies]), torch.cat([movies, users])])
        weight = None
        if self.edge_weight:
            norm = graph[RATES].edge_attr[:, 0]
            weight = torch.cat([norm, norm])
        if sparse:  # the graph is symmetric, so A = A^T and no flip is needed
            adj = to_torch_csr_tensor(edge_index, weight, size=(n_nodes, n_nodes))
            return gcn_norm(adj, None, n_nodes, add_self_loops=True)[0].to(dtype), None
        edge_index, weight = gcn_norm(edge_index, weight, n_nodes, add_self_loops=True)
        return edge_index, weight.to(dtype)

    def decode(
        self, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> RatingScores:
        return RatingScores(self.decoder(embeddings.user[user], embeddings.movie[movie]))
