"""`SageNet`: the GraphSAGE family — input embeddings, SAGEConv layers over the
heterogeneous user–movie graph (HeteroConv), a pair decoder.

h_movie' = W_1 h_movie + W_2 · aggr_{u ∈ N(movie)} h_u (and symmetrically for users), over
edge types (user, rates, movie) and (movie, rev_rates, user), or one pair of edge types per
rating level (`relations=per_rating`), whose outputs sum. With per-level relations the mean
runs over all of a node's neighbours, each message weighted by its level's W_2^r:

    h_u' = W_1 h_u + 1/|N(u)| Σ_r Σ_{m ∈ N_r(u)} W_2^r h_m

(a mean per level would give a user's one 1-star rating the weight of their hundred
4-star ones). Messages are sparse matrix products or per-edge gathers
(`model.net.message_passing`, see `adjacency`).

The design choices are arguments (see `models.layers` and `models.decoders`); the defaults
are the notebook design (`experiment=seed_notebook_sage`), conf/model/sage.yaml the
strongest variant found.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv

from movierec.checks import check_choice
from movierec.data.graph import RATES, REV_RATES, GraphSchema
from movierec.errors import ConfigError
from movierec.models.adjacency import (
    MessageGraph,
    TransposeAware,
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
from movierec.models.fold_in import fold_in, ranking_error, rating_error
from movierec.models.inputs import NodeInput
from movierec.models.layers import (
    check_encoder_settings,
    combine_layers,
    combined_width,
    node_dropout,
    relation_edges,
)

SAGE_AGGREGATIONS = ("mean", "max", "sum", "min")


class SumAwareSAGEConv(TransposeAware, SAGEConv):
    """PyG's `SAGEConv`, whose summing sparse aggregation is differentiated through the
    adjacency's recorded transpose (`adjacency.TransposeAware`)."""


EdgeType = tuple[str, str, str]


class SageNet(EncoderHeads, RatingNet):
    """GraphSAGE rating model (inductive: encodes sampled subgraphs and new users too).

    Args:
        schema: data sizes (see `GraphSchema`).
        hidden: width of input embeddings and of every SAGE layer.
        num_layers: SAGEConv layers (the notebook uses 2).
        aggr: neighbourhood aggregation: mean | max | sum | min.
        dropout: dropout between layers.
        id_embeddings: add learned per-node embeddings to the feature projections.
        decoder_hidden: hidden widths of the MLP decoder (the notebook: [hidden]).
        message_passing: auto | sparse | edges (see `movierec.models.adjacency`).
        relations: single | weighted | per_rating (see `movierec.models.layers`).
        combine: last | residual | mean | concat (see `movierec.models.layers`).
        node_dropout: rate of GC-MC node dropout on the input embeddings.
        norm: with per-level relations and aggr=mean, each message's weight: left
            1/|N(receiver)| (the mean) | symmetric 1/sqrt(|N(receiver)|·|N(sender)|)
            (GC-MC's, which damps what a rarely rated movie says).
        decoder, bias, n_basis, ranking, ranking_dim, ranking_weight, ranking_negatives:
            the heads on the encoded tables (`EncoderHeads.attach_heads`).
    """

    inductive = True

    def __init__(
        self,
        schema: GraphSchema,
        hidden: int = 64,
        num_layers: int = 1,
        aggr: str = "mean",
        dropout: float = 0.0,
        id_embeddings: bool = True,
        decoder_hidden: list[int] | None = None,
        message_passing: str = "auto",
        relations: str = "per_rating",
        combine: str = "concat",
        node_dropout: float = 0.0,
        norm: str = "symmetric",
        decoder: str = "dot",
        bias: bool = True,
        n_basis: int = 2,
        ranking: str = "dot",
        ranking_dim: int = 64,
        ranking_weight: float = 10.0,
        ranking_negatives: int = 4,
    ) -> None:
        super().__init__(schema)
        _check_settings(hidden, num_layers, aggr, dropout, node_dropout, message_passing,
                        relations, combine, norm)  # fmt: skip
        # the per-level mean is a degree-weighted sum: the weights ride on sparse values
        self.weighted_sum = _weighted_sum(relations, aggr)
        check_bias(bias, decoder)
        self.input = NodeInput(schema, hidden, id_embeddings, key="model.net")
        self.edge_types = _edge_types(relations, len(schema.rating_levels))
        layer_aggr = "sum" if relations == "per_rating" and aggr == "mean" else aggr
        self.convs = nn.ModuleList(
            _sage_layer(self.edge_types, hidden, layer_aggr) for _ in range(num_layers)
        )
        self.dropout = dropout
        self.aggr = aggr
        self.relations = relations
        self.combine = combine
        self.node_dropout = node_dropout
        self.norm = norm
        self.message_graph = MessageGraph(message_passing, aggr, self._build)
        self.attach_heads(
            schema, combined_width(hidden, num_layers, combine), decoder,
            decoder_hidden if decoder_hidden is not None else [hidden],
            n_basis, bias, (ranking, ranking_dim, ranking_weight, ranking_negatives),
        )  # fmt: skip

    def subgraph_refusal(self) -> str | None:
        """A sampled batch's `edge_label` holds its supervision ratings, not its messages'
        levels, and the ranking output's BPR term is not drawn on subgraphs."""
        if self.relations == "per_rating":
            return (
                "model.net.relations=per_rating splits messages by their rating level; "
                "use single|weighted"
            )
        if self.ranking is not None:
            return "its ranking output trains on the whole graph; set model.net.ranking=none"
        return None

    def new_user_refusal(self) -> None:
        """None: inductive, so a new user joins the graph; learned ID embeddings and
        offsets of users are fitted to the given ratings (fold-in, `embed_new_user`)."""
        return None

    @torch.no_grad()
    def embed_new_user(
        self, graph: HeteroData, embeddings: NodeEmbeddings, movies, stars
    ) -> tuple[NodeEmbeddings, int]:
        """The user joins the graph and is encoded (the base class's way); with learned
        user tables (ID embeddings, offsets) their embedding, started there, and offset
        are then fitted to `stars` against the trained movie tables `embeddings.movie`,
        the network frozen (`models.fold_in`)."""
        grown, user = super().embed_new_user(graph, embeddings, movies, stars)
        if not self.input.has_ids("user") and self.bias is None:
            return grown, user
        rows = torch.zeros_like(movies)

        def rate(z: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
            rating, _ = self.decoder(z.unsqueeze(0), embeddings.movie, rows, movies)
            if self.bias is None:
                return rating
            return rating + offset + self.bias.movie.weight[movies, 0]

        data_loss = rating_error(rate, stars)
        if self.ranking is not None:  # the given movies are ones the user watched
            ranking = self.ranking
            n_movies = embeddings.movie.shape[0]

            def score(z: torch.Tensor, picked: torch.Tensor) -> torch.Tensor:
                return ranking.pairs(z.unsqueeze(0), embeddings.movie, rows[:1], picked)

            bpr = ranking_error(score, movies, n_movies, ranking.weight)
            rated = data_loss
            data_loss = lambda z, b: rated(z, b) + bpr(z)  # noqa: E731
        z, offset = fold_in(data_loss, grown.user[user])
        table = torch.cat([embeddings.user[:user], z.unsqueeze(0)])
        new_bias = offset.reshape(1) if self.bias is not None else None
        return NodeEmbeddings(table, embeddings.movie, new_user_bias=new_bias), user

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        x = self.input(graph)
        x = {kind: node_dropout(v, self.node_dropout, self.training) for kind, v in x.items()}
        with self.message_graph.passing(graph[RATES].edge_index.device) as sparse:
            if sparse:
                x = {kind: full_precision(value) for kind, value in x.items()}
            edges = self.message_graph.get(graph, sparse, x["user"].dtype)
            outputs = [x]
            for i, conv in enumerate(self.convs):
                h = conv(x, edges)
                if self.combine == "residual":
                    h = {kind: h[kind] + x[kind] for kind in h}
                if i < len(self.convs) - 1:
                    h = {k: F.dropout(v.relu(), self.dropout, self.training) for k, v in h.items()}
                x = h
                outputs.append(x)
        return NodeEmbeddings(
            combine_layers([o["user"] for o in outputs], self.combine),
            combine_layers([o["movie"] for o in outputs], self.combine),
        )

    def prepare(self, graph: HeteroData) -> None:
        """The sparse path's adjacencies (the per-edge path builds little worth moving)."""
        self.message_graph.prepare(graph, sparse_dtype(self))

    def _build(self, graph: HeteroData, sparse: bool, dtype: torch.dtype) -> dict:
        """Per edge type: (2, E_r) edge_index, or the sparse CSR `adj_t` (receivers ×
        senders) with `dtype` values."""
        sizes = {"user": graph["user"].num_nodes, "movie": graph["movie"].num_nodes}
        n_levels = len(self.schema.rating_levels)
        edges: dict[EdgeType, torch.Tensor] = {}
        for direction, kinds in (
            (RATES, self.edge_types[0::2]),
            (REV_RATES, self.edge_types[1::2]),
        ):
            parts = relation_edges(graph, direction, self.relations, self.rating_class, n_levels)
            if self.relations == "per_rating" and self.aggr == "mean":
                parts = _mean_over_all_levels(
                    parts, sizes[direction[2]], sizes[direction[0]], self.norm
                )
            for (edge_index, weight), kind in zip(parts, kinds, strict=True):
                if not sparse:
                    edges[kind] = edge_index
                    continue
                size = (sizes[kind[2]], sizes[kind[0]])  # receivers × senders
                edges[kind] = csr_matrix(edge_index.flip(0), weight, size).to(dtype)
        if sparse and self._sums:
            self._tag_transposes(graph, edges)
        return edges

    @property
    def _sums(self) -> bool:
        """Whether the convs aggregate by a plain (weighted) sum, a product `adjacency.
        product` can differentiate through a known transpose."""
        return (self.relations == "per_rating" and self.aggr == "mean") or self.aggr == "sum"

    def _tag_transposes(self, graph: HeteroData, edges: dict) -> None:
        """Tag each relation's CSR with its transpose: the reverse relation's when the
        graph's reverse edges mirror the forward ones and the weights are symmetric (the
        full training graph), else one built here (a sampled subgraph, norm=left)."""
        forward, reverse = graph[RATES], graph[REV_RATES]
        mirrored = (
            self.norm == "symmetric" or not self.weighted_sum or self.relations == "weighted"
        ) and _mirrors(forward, reverse)
        for to_movie, to_user in zip(self.edge_types[0::2], self.edge_types[1::2], strict=True):
            a, b = edges[to_movie], edges[to_user]
            with_transpose(a, b if mirrored else transposed(a))
            with_transpose(b, a if mirrored else transposed(b))


def _mirrors(forward, reverse) -> bool:
    """Whether `reverse` holds exactly `forward`'s edges flipped, with the same attributes."""
    (users, movies), (reverse_movies, reverse_users) = forward.edge_index, reverse.edge_index
    if not (torch.equal(reverse_movies, movies) and torch.equal(reverse_users, users)):
        return False  # compared row by row: no flipped (2, E) copy (320 MB at ML-25M)
    attr, reverse_attr = getattr(forward, "edge_attr", None), getattr(reverse, "edge_attr", None)
    if attr is None or reverse_attr is None:
        return attr is None and reverse_attr is None
    return torch.equal(attr, reverse_attr)


def _mean_over_all_levels(parts: list, n_receivers: int, n_senders: int, norm: str) -> list:
    """Per-level (edge_index, None) with weight 1 / (receiver's degree over all levels), or
    1 / sqrt(receiver's · sender's degree) for norm=symmetric."""
    edges = torch.cat([edge_index for edge_index, _ in parts], dim=1)
    to_degree = torch.bincount(edges[1], minlength=n_receivers).clamp_(min=1).float()
    if norm == "left":
        return [(e, to_degree[e[1]].reciprocal()) for e, _ in parts]
    from_degree = torch.bincount(edges[0], minlength=n_senders).clamp_(min=1).float()
    return [(e, (to_degree[e[1]] * from_degree[e[0]]).rsqrt()) for e, _ in parts]


def _edge_types(relations: str, n_levels: int) -> list[EdgeType]:
    """[to-movie, to-user] edge types per relation, interleaved."""
    if relations != "per_rating":
        return [RATES, REV_RATES]
    kinds: list[EdgeType] = []
    for r in range(n_levels):
        kinds += [("user", f"rates_{r}", "movie"), ("movie", f"rev_rates_{r}", "user")]
    return kinds


def _check_settings(
    hidden, num_layers, aggr, dropout, node_dropout, message_passing, relations, combine, norm
) -> None:
    """Refuse a SageNet setting it cannot build, naming its key."""
    check_encoder_settings(
        hidden, num_layers, dropout, node_dropout, message_passing, relations, combine
    )
    check_choice("model.net.aggr", aggr, SAGE_AGGREGATIONS)
    check_choice("model.net.norm", norm, ("left", "symmetric"))
    if _weighted_sum(relations, aggr) and message_passing == "edges":
        raise ConfigError(
            f"model.net.relations={relations} with aggr={aggr} needs sparse messages "
            "(SAGEConv takes no edge weights on the per-edge path): set "
            "model.net.message_passing=auto|sparse"
        )


def _weighted_sum(relations: str, aggr: str) -> bool:
    """Whether messages carry weights (the ratings, or a per-level mean's degree weights),
    which only the sparse path can apply."""
    return relations == "weighted" or (relations, aggr) == ("per_rating", "mean")


def _sage_layer(edge_types: list, hidden: int, aggr: str) -> HeteroConv:
    """One SAGEConv per edge type (`_edge_types`: to-movie, to-user, per relation), summed
    per destination; only the first type into movies and into users has a root weight, so
    a node's own features are added once."""
    return HeteroConv(
        {
            kind: SumAwareSAGEConv((hidden, hidden), hidden, aggr=aggr, root_weight=i < 2)
            for i, kind in enumerate(edge_types)
        },
        aggr="sum",
    )
