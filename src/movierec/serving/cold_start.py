"""Embedding a new user from a few ratings given at request time (no retraining).

Each network says itself whether and how it can (`RatingNet.embed_new_user`, with the
reason in `RatingNet.new_user_refusal`): matrix factorization folds the user in, an
inductive GNN grows the graph, a transductive one refuses. This module only turns a
refusal into advice for the person asking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from movierec.models.base import ColdStartUnsupported, NodeEmbeddings, RatingNet

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

ADVICE = "recommend for a known user_id, or use fallback=popular"


def embed_new_user(
    net: RatingNet,
    graph: HeteroData,
    embeddings: NodeEmbeddings,
    movies: torch.Tensor,
    stars: torch.Tensor,
) -> tuple[NodeEmbeddings, int]:
    """Embeddings with one new user appended, and that user's index.

    Args:
        net: the trained network (eval mode).
        graph: its training message graph.
        embeddings: `net.encode(graph)`.
        movies: (N,) int64 movie indices the user rated; stars: (N,) their ratings.

    Raises:
        ColdStartUnsupported: the network's own reason, and what to do instead.
    """
    try:
        return net.embed_new_user(graph, embeddings, movies, stars)
    except ColdStartUnsupported as err:
        raise ColdStartUnsupported(f"{err}; {ADVICE}") from None


__all__ = ["ColdStartUnsupported", "embed_new_user"]
