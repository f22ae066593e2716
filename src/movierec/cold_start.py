"""Embedding a new user from a few ratings given at request time (no retraining).

How each model does it:
    mf          fold-in: the user's factors and bias [p_u ‖ b_u] solve the training
                objective with every movie parameter fixed, a ridge regression
                    min Σ_j (r_j − μ − b_j − [q_j ‖ 1]·x)² + n·λ‖x‖²
                over the n given ratings (λ = `model.net.reg`, as each rating adds
                λ‖x‖² in training).
    sage        inductive (`RatingNet.inductive`): the user is added to the message graph
                as a node with the given ratings as edges and the graph is encoded again;
                its input features are the mean of the training users' features (the
                placeholder vector itself, or an "average user" for side features). Only
                without learned user ID embeddings (`model.net.id_embeddings=false`, the
                default): an ID embedding does not exist for an unseen user.
    gcn         not supported: its normalized adjacency D^-1/2 (A + I) D^-1/2 is built over
                the training graph's node counts (the schema), so it encodes only that
                graph (`inductive = False`).
    gcmc        not supported: the encoder holds a learned message weight row per
                training user and sizes its per-level adjacency by the training user
                count, so the graph cannot grow. (Its user side only reads the rated
                movies' weights, so a dedicated encoder method could embed a new user.)
"""

from __future__ import annotations

import torch

from movierec.data.graph import graph_from_tensors, graph_tensors
from movierec.errors import MovieRecError
from movierec.models.base import NodeEmbeddings, RatingNet
from movierec.models.gcmc import GcmcNet
from movierec.models.inputs import NodeInput
from movierec.models.mf import BiasedMF


class ColdStartUnsupported(MovieRecError):
    """The model cannot embed a user it was not trained with."""


def cold_start_method(net: RatingNet) -> str | None:
    """The way `net` embeds a new user: "fold-in", "graph", or None (it cannot)."""
    if isinstance(net, BiasedMF):
        return "fold-in"
    if net.inductive and not _has_user_ids(net):
        return "graph"
    return None


def _has_user_ids(net: RatingNet) -> bool:
    node_input = getattr(net, "input", None)
    return isinstance(node_input, NodeInput) and "user" in node_input.embedding


def _why_not(net: RatingNet) -> str:
    if _has_user_ids(net):
        return "it learns an ID embedding per training user, model.net.id_embeddings=true"
    if isinstance(net, GcmcNet):
        return "it learns message weights per training user"
    return "its encoder is transductive: it encodes only the graph it was trained on"


@torch.no_grad()
def embed_new_user(
    net: RatingNet,
    graph,
    embeddings: NodeEmbeddings,
    movies: torch.Tensor,
    stars: torch.Tensor,
    rating_scale: tuple[float, float],
) -> tuple[NodeEmbeddings, int]:
    """Embeddings with one new user appended, and that user's index.

    Args:
        net: the trained network (eval mode).
        graph: its training message graph.
        embeddings: `net.encode(graph)`.
        movies: (N,) int64 movie indices the user rated; stars: (N,) their ratings.
        rating_scale: (lowest, highest) stars, for the normalized edge weight.
    """
    method = cold_start_method(net)
    if method == "fold-in":
        return _fold_in(net, embeddings, movies, stars)
    if method == "graph":
        return _encode_with_user(net, graph, movies, stars, rating_scale)
    raise ColdStartUnsupported(
        f"{type(net).__name__} cannot embed a user it was not trained with ({_why_not(net)}); "
        "recommend for a known user_id, or use fallback=popular; mf, and sage without ID "
        "embeddings, take new users' ratings"
    )


def _fold_in(
    net: BiasedMF, embeddings: NodeEmbeddings, movies: torch.Tensor, stars: torch.Tensor
) -> tuple[NodeEmbeddings, int]:
    movie_rows = embeddings.movie[movies].double()  # (N, dim + 1): [q_j ‖ b_j]
    design = torch.cat([movie_rows[:, :-1], torch.ones_like(movie_rows[:, :1])], dim=1)
    target = stars.double() - float(net.mean) - movie_rows[:, -1]
    penalty = len(stars) * float(net.reg) * torch.eye(design.shape[1], dtype=torch.float64)
    solution = torch.linalg.solve(design.T @ design + penalty, design.T @ target)
    user = torch.cat([embeddings.user, solution.to(embeddings.user.dtype).unsqueeze(0)])
    return NodeEmbeddings(user, embeddings.movie), len(user) - 1


def _encode_with_user(
    net: RatingNet,
    graph,
    movies: torch.Tensor,
    stars: torch.Tensor,
    rating_scale: tuple[float, float],
) -> tuple[NodeEmbeddings, int]:
    tensors = graph_tensors(graph)
    new = len(tensors["user_node_id"])
    low, high = rating_scale
    tensors["user_node_id"] = torch.cat([tensors["user_node_id"], torch.tensor([new])])
    if "user_x" in tensors:
        mean = tensors["user_x"].mean(dim=0, keepdim=True)
        tensors["user_x"] = torch.cat([tensors["user_x"], mean])
    edges = torch.stack([torch.full_like(movies, new), movies])
    tensors["edge_index"] = torch.cat([tensors["edge_index"], edges], dim=1)
    label = stars.to(tensors["edge_label"].dtype)
    tensors["edge_label"] = torch.cat([tensors["edge_label"], label])
    norm = ((label - low) / (high - low)).unsqueeze(1).to(tensors["edge_attr"].dtype)
    tensors["edge_attr"] = torch.cat([tensors["edge_attr"], norm])
    return net.encode(graph_from_tensors(tensors)), new
