"""Pieces the SAGE and GCN families share: which ratings form which relation, node
dropout, and how the outputs of the message-passing layers combine into one embedding.

`model.net.relations`:
    single      one relation, every rating an edge of weight 1 (the seed designs' SAGE).
    weighted    one relation, the normalized rating in [0, 1] as the edge weight (the
                Spark design's GCN; a bottom-of-scale rating then carries nothing).
    per_rating  one relation per rating level, each with its own weights (GC-MC), so
                "rated 1" and "rated 5" neighbours say different things.

`model.net.combine`:
    last        the last layer's output (the seed designs).
    residual    each layer adds its input back: h_{l+1} = h_l + f(h_l) (skip connections).
    mean        the mean of the input and every layer's output (as in LightGCN).
    concat      the input and every layer's output side by side, width (L + 1)·d.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch_geometric.data import HeteroData

from movierec.checks import check_choice, check_fraction, check_positive
from movierec.models.adjacency import MESSAGE_PASSING

RELATIONS = ("single", "weighted", "per_rating")
COMBINE = ("last", "residual", "mean", "concat")


def relation_edges(
    graph: HeteroData,
    edge_type: tuple[str, str, str],
    relations: str,
    level_of: Callable[[torch.Tensor], torch.Tensor],
    n_levels: int,
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The ratings of `graph[edge_type]` split into relations: per relation the
    (2, E_r) edge_index (senders, receivers) and the (E_r,) edge weight, or None for
    weight 1. `level_of` maps stars (E,) to level indices (E,) (`RatingNet.rating_class`);
    per_rating gives `n_levels` entries, empty ones included."""
    store = graph[edge_type]
    if relations == "single":
        return [(store.edge_index, None)]
    if relations == "weighted":
        return [(store.edge_index, store.edge_attr[:, 0])]
    level = level_of(store.edge_label)
    return [(store.edge_index[:, level == r], None) for r in range(n_levels)]


def node_dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Zero whole rows (nodes) of x (n, d) with probability `rate`, scaling the kept rows
    by 1 / (1 − rate): a dropped node sends no message anywhere in the first layer (GC-MC's
    node dropout). Draws no random numbers when off, so runs without it keep their seeds'
    streams."""
    if not training or rate == 0:
        return x
    keep = torch.rand(x.shape[0], 1, device=x.device) >= rate
    return x * keep / (1 - rate)


def combine_layers(outputs: list[torch.Tensor], mode: str) -> torch.Tensor:
    """Node embeddings from [input, layer 1, …, layer L], each (n, d) → (n, d), or
    (n, (L + 1)·d) for concat."""
    if mode == "mean":
        return torch.stack(outputs).mean(dim=0)
    if mode == "concat":
        return torch.cat(outputs, dim=-1)
    return outputs[-1]  # last, residual (the skips are added inside the layer loop)


def combined_width(channels: int, num_layers: int, mode: str) -> int:
    """Width of `combine_layers`' output for `channels`-wide layers."""
    return channels * (num_layers + 1) if mode == "concat" else channels


def check_encoder_settings(
    hidden, num_layers, dropout, node_dropout, message_passing, relations, combine
) -> None:
    """Refuse a setting the SAGE and GCN encoders share that they cannot build, naming
    its `model.net` key."""
    check_positive("model.net.hidden", hidden)
    check_choice("model.net.message_passing", message_passing, MESSAGE_PASSING)
    check_positive("model.net.num_layers", num_layers)
    check_fraction("model.net.dropout", dropout)
    check_fraction("model.net.node_dropout", node_dropout)
    check_choice("model.net.relations", relations, RELATIONS)
    check_choice("model.net.combine", combine, COMBINE)
