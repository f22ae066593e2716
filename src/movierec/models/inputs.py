"""Per-node-type input embeddings: a Linear over features, learned ID embeddings, or both."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import HeteroData

from movierec.data.graph import GraphSchema
from movierec.errors import ConfigError
from movierec.models.base import embedding_rows


class NodeInput(nn.Module):
    """Maps each node type to `channels`-wide input vectors.

    x_user (n_users, user_dim) → Linear → (n_users, channels), and likewise for movies;
    with `id_embeddings` a learned (n_nodes, channels) table is added (looked up by
    `graph[kind].node_id`, so subgraphs get their own nodes' rows; nodes appended after the
    table's last row, a user given at request time, get the table's mean row). A node type with
    neither features nor ID embeddings is a configuration error.
    """

    def __init__(self, schema: GraphSchema, channels: int, id_embeddings: bool, key: str) -> None:
        super().__init__()
        dims = {"user": schema.user_dim, "movie": schema.movie_dim}
        counts = {"user": schema.n_users, "movie": schema.n_movies}
        self.linear = nn.ModuleDict(
            {kind: nn.Linear(dim, channels) for kind, dim in dims.items() if dim > 0}
        )
        self.embedding = nn.ModuleDict(
            {kind: nn.Embedding(n, channels) for kind, n in counts.items()} if id_embeddings else {}
        )
        for kind in dims:
            if kind not in self.linear and kind not in self.embedding:
                raise ConfigError(
                    f"{key} needs {kind} input features, but the data has none "
                    f"(data.user_features=none): set data.user_features=placeholder|side "
                    f"or {key}.id_embeddings=true"
                )
        self.reset_parameters()

    def has_ids(self, kind: str) -> bool:
        """Whether `kind` nodes ("user" | "movie") have a learned ID embedding table."""
        return kind in self.embedding

    def reset_parameters(self) -> None:
        for layer in self.linear.values():
            layer.reset_parameters()
        for table in self.embedding.values():
            nn.init.normal_(table.weight, std=0.1)

    def forward(self, graph: HeteroData) -> dict[str, torch.Tensor]:
        out = {}
        for kind in ("user", "movie"):
            value = None
            if kind in self.linear:
                value = self.linear[kind](graph[kind].x)
            if kind in self.embedding:
                store = graph[kind]  # a sampled subgraph names its nodes' global ids
                table = self.embedding[kind]
                if "node_id" in store and store.num_nodes <= table.num_embeddings:
                    ids = embedding_rows(table, store.node_id)
                else:
                    ids = _with_new_rows(table, store.num_nodes)
                value = ids if value is None else value + ids
            out[kind] = value
        return out


def _with_new_rows(table: nn.Embedding, n_nodes: int) -> torch.Tensor:
    """The table's rows, then its mean row for each of the nodes past its end (a graph
    grown by users given at request time, `models.base.graph_with_user`)."""
    extra = n_nodes - table.num_embeddings
    if extra <= 0:
        return table.weight
    mean = table.weight.mean(dim=0, keepdim=True).expand(extra, -1)
    return torch.cat([table.weight, mean])
