"""`SageNet`: the notebook design — per-type input embeddings, two SAGEConv layers over the
heterogeneous user–movie graph, an MLP edge decoder.

h_movie' = W_1 h_movie + W_2 · mean_{u ∈ N(movie)} h_u (and symmetrically for users),
over edge types (user, rates, movie) and (movie, rev_rates, user).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv

from movierec.data.graph import RATES, REV_RATES, GraphSchema
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
    """GraphSAGE rating model.

    Args:
        schema: data sizes (see `GraphSchema`).
        hidden: width of input embeddings and of every SAGE layer.
        num_layers: SAGEConv layers (the notebook uses 2).
        aggr: neighbourhood aggregation: mean | max | sum | min.
        dropout: dropout between layers.
        id_embeddings: add learned per-node embeddings to the feature projections.
        decoder_hidden: hidden widths of the MLP decoder (the notebook: [hidden]).
    """

    def __init__(
        self,
        schema: GraphSchema,
        hidden: int = 64,
        num_layers: int = 2,
        aggr: str = "mean",
        dropout: float = 0.0,
        id_embeddings: bool = False,
        decoder_hidden: list[int] | None = None,
    ) -> None:
        super().__init__(schema)
        check_positive("model.net.hidden", hidden)
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
        self.decoder = MlpDecoder(
            2 * hidden,
            list(decoder_hidden) if decoder_hidden is not None else [hidden],
            schema.mean_rating,
        )

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        x = self.input(graph)
        edges = {RATES: graph[RATES].edge_index, REV_RATES: graph[REV_RATES].edge_index}
        for i, conv in enumerate(self.convs):
            x = conv(x, edges)
            if i < len(self.convs) - 1:
                x = {k: F.dropout(v.relu(), self.dropout, self.training) for k, v in x.items()}
        return NodeEmbeddings(x["user"], x["movie"])

    def decode(
        self, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> RatingScores:
        return RatingScores(self.decoder(embeddings.user[user], embeddings.movie[movie]))
