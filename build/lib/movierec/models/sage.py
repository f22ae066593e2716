"""`SageNet`: the notebook design — per-type input embeddings, two SAGEConv layers over the
heterogeneous user–movie graph, an MLP edge decoder.

h_movie' = W_1 h_movie + W_2 · mean_{u ∈ N(movie)} h_u (and symmetrically for users),
over edge types (user, rates, movie) and (movie, rev_rates, user). Messages are sparse
matrix products or per-edge gathers (`model.net.message_passing`, see `adjacency`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv
from torch_geometric.utils import to_torch_csr_tensor

from movierec.data.graph import RATES, REV_RATES, GraphSchema
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

SAGE_AGGREGATIONS = ("mean", "max", "sum", "min")


class SageNet(RatingNet):
    """GraphSAGE rating model (inductive: encodes sampled subgraphs too).

    Args:
        schema: data sizes (see `GraphSchema`).
        hidden: width of input embeddings and of every SAGE layer.
        num_layers: SAGEConv layers (the notebook uses 2).
        aggr: neighbourhood aggregation: mean | max | sum | min.
        dropout: dropout between layers.
        id_embeddings: add learned per-node embeddings to the feature projections.
        decoder_hidden: hidden widths of the MLP decoder (the notebook: [hidden]).
        message_passing: auto | sparse | edges (see `movierec.models.adjacency`).
    """

    inductive = True

    def __init__(
        self,
        schema: GraphSchema,
        hidden: int = 64,
        num_layers: int = 2,
        aggr: str = "mean",
        dropout: float = 0.0,
        id_embeddings: bool = False,
        decoder_hidden: list[int] | None = None,
        message_passing: str = "auto",
    ) -> None:
        super().__init__(schema)
        check_positive("model.net.hidden", hidden)
        check_choice("model.net.message_passing", message_passing, MESSAGE_PASSING)
        check_positive("model.net.num_layers", num_layers)
        check_choice("model.net.aggr", aggr, SAGE_AGGREGATIONS)
        check_fraction("model.net.dropout", dropout)
        self.input = NodeInput(schema, hidden, id_embeddings, key="model.net")
        self.convs = nn.ModuleList(
            HeteroConv(
                {
                    RATES: SAGEConv((hidden, hidden), hidden, aggr=aggr),
                    REV_RATES: SAGEConv((hidden, hidden), hidden, aggr=aggr),
                },
                aggr="sum",
            )
            for _ in range(num_layers)
        )
        self.dropout = dropout
        self.aggr = aggr
        self.message_passing = message_passing
        self._adjacency = GraphCache()
        self.decoder = MlpDecoder(
            2 * hidden,
            list(decoder_hidden) if decoder_hidden is not None else [hidden],
            schema.mean_rating,
        )

    def new_user_refusal(self) -> str | None:
        """Inductive, so a new user joins the graph, unless users have learned ID embeddings
        (an unseen user has no row in that table)."""
        if self.input.has_ids("user"):
            return "it learns an ID embedding per training user, model.net.id_embeddings=true"
        return None

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        x = self.input(graph)
        device = graph[RATES].edge_index.device
        sparse = use_sparse(self.message_passing, self.aggr, device)
        with sparse_messages_in_full_precision(device, sparse):
            if sparse:
                x = {kind: full_precision(value) for kind, value in x.items()}
            edges = self._edges(graph, sparse, x["user"].dtype)
            for i, conv in enumerate(self.convs):
                x = conv(x, edges)
                if i < len(self.convs) - 1:
                    x = {k: F.dropout(v.relu(), self.dropout, self.training) for k, v in x.items()}
        return NodeEmbeddings(x["user"], x["movie"])

    def _edges(
        self, graph: HeteroData, sparse: bool, dtype: torch.dtype
    ) -> dict[tuple[str, str, str], torch.Tensor]:
        """Per edge type: (2, E) edge_index, or the sparse CSR `adj_t` (receivers × senders)
        with `dtype` values (built once per graph, see `GraphCache`)."""
        edge_index = {RATES: graph[RATES].edge_index, REV_RATES: graph[REV_RATES].edge_index}
        if not sparse:
            return edge_index
        sizes = {RATES: (graph["movie"].num_nodes, graph["user"].num_nodes)}
        sizes[REV_RATES] = sizes[RATES][::-1]
        return self._adjacency.get(
            graph,
            dtype,
            lambda: {
                kind: to_torch_csr_tensor(edges.flip(0), size=sizes[kind]).to(dtype)
                for kind, edges in edge_index.items()
            },
        )

    def decode(
        self, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> RatingScores:
        return RatingScores(self.decoder(embeddings.user[user], embeddings.movie[movie]))
