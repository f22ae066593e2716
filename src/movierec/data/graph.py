"""The bipartite user–movie graph as a PyG `HeteroData`, and its NetworkX export.

Only the ratings passed as `message_rows` (the training split) become edges, so
validation and test ratings are never visible to message passing.

Layout:
    graph["user"].node_id          (n_users,) int64
    graph["user"].x                (n_users, d_user) float32, absent for user_features=none
    graph["movie"].node_id / .x    (n_movies,) / (n_movies, n_genres)
    graph["user", "rates", "movie"].edge_index  (2, E) int64
        .edge_label  (E,) float32 stars;  .edge_attr (E, 1) float32 rating in [0, 1]
    graph["movie", "rev_rates", "user"]          the same edges reversed
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from movierec.data.features import movie_features, user_features
from movierec.data.processed import RatingsData

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import HeteroData

RATES = ("user", "rates", "movie")
REV_RATES = ("movie", "rev_rates", "user")


def build_graph(
    data: RatingsData,
    message_rows: np.ndarray,
    user_feature_kind: str = "placeholder",
    placeholder_dim: int = 20,
) -> HeteroData:
    """Graph whose edges are the ratings at `message_rows` of `data.ratings`."""
    from torch_geometric.data import HeteroData  # here: reading a bundle imports no PyG

    graph = HeteroData()
    graph["user"].node_id = torch.arange(data.n_users)
    graph["movie"].node_id = torch.arange(data.n_movies)
    users_x = user_features(data, user_feature_kind, placeholder_dim)
    if users_x is not None:
        graph["user"].x = torch.from_numpy(users_x)
    graph["movie"].x = torch.from_numpy(movie_features(data))

    ratings = data.ratings
    rows = np.asarray(message_rows)
    endpoints = np.empty((3, len(rows)), dtype=np.int64)  # gathered in place: no stack
    np.take(ratings["user"].to_numpy(), rows, out=endpoints[0])
    np.take(ratings["movie"].to_numpy(), rows, out=endpoints[1])
    stars = torch.from_numpy(ratings["rating"].to_numpy()[rows])
    norm = torch.from_numpy(ratings["rating_norm"].to_numpy()[rows]).unsqueeze(1)
    graph[RATES].edge_index, graph[REV_RATES].edge_index = _both_directions(
        torch.from_numpy(endpoints)
    )
    graph[RATES].edge_label = stars
    graph[RATES].edge_attr = norm
    graph[REV_RATES].edge_label = stars
    graph[REV_RATES].edge_attr = norm
    return graph


def to_networkx(data: RatingsData, graph: HeteroData) -> nx.Graph:
    """Undirected NetworkX graph: nodes "u<userId>"/"m<movieId>" with type, title, genres;
    edges carry `rating` (stars) and `rating_norm`."""
    import networkx as nx

    nxg = nx.Graph()
    user_ids = data.users["userId"].to_numpy()
    movie_ids = data.movies["movieId"].to_numpy()
    nxg.add_nodes_from((f"u{uid}", {"type": "user", "userId": int(uid)}) for uid in user_ids)
    nxg.add_nodes_from(
        (
            f"m{mid}",
            {"type": "movie", "movieId": int(mid), "title": title, "genres": genres},
        )
        for mid, title, genres in zip(
            movie_ids, data.movies["title"], data.movies["genres"], strict=True
        )
    )
    store = graph[RATES]
    src, dst = store.edge_index.numpy()
    nxg.add_edges_from(
        (f"u{user_ids[u]}", f"m{movie_ids[m]}", {"rating": float(r), "rating_norm": float(n)})
        for u, m, r, n in zip(
            src, dst, store.edge_label.numpy(), store.edge_attr[:, 0].numpy(), strict=True
        )
    )
    return nxg


@dataclass(frozen=True)
class GraphSchema:
    """What a model needs to know about the data to build its layers (JSON-serialisable).

    Attributes:
        n_users, n_movies: node counts.
        user_dim: width of `graph["user"].x` (0 when users have no input features).
        movie_dim: width of `graph["movie"].x` (number of genres).
        rating_scale: (lowest, highest) stars; predictions are clamped to it.
        rating_levels: the distinct rating values, ascending (e.g. 1..5 or 0.5..5).
        mean_rating: mean training rating in stars.
    """

    n_users: int
    n_movies: int
    user_dim: int
    movie_dim: int
    rating_scale: tuple[float, float]
    rating_levels: tuple[float, ...]
    mean_rating: float

    @classmethod
    def from_graph(cls, graph: HeteroData, rating_scale: tuple[float, float]) -> GraphSchema:
        stars = graph[RATES].edge_label
        user_x = graph["user"].get("x")
        return cls(
            n_users=int(graph["user"].num_nodes),
            n_movies=int(graph["movie"].num_nodes),
            user_dim=0 if user_x is None else int(user_x.shape[1]),
            movie_dim=int(graph["movie"].x.shape[1]),
            rating_scale=(float(rating_scale[0]), float(rating_scale[1])),
            rating_levels=rating_levels(rating_scale, stars),
            mean_rating=float(stars.float().mean()) if len(stars) else float(sum(rating_scale) / 2),
        )

    @classmethod
    def from_dict(cls, values: dict) -> GraphSchema:
        """Inverse of `as_dict` (a checkpoint's hyperparameters hold lists, not tuples)."""
        return cls(
            **{
                **values,
                "rating_scale": tuple(values["rating_scale"]),
                "rating_levels": tuple(values["rating_levels"]),
            }
        )

    def as_dict(self) -> dict:
        return asdict(self)


def rating_levels(rating_scale: tuple[float, float], stars: torch.Tensor) -> tuple[float, ...]:
    """Rating classes: whole stars, or half stars when any rating is a half star."""
    low, high = rating_scale
    step = 0.5 if bool(torch.any(stars.float() % 1 != 0)) or low % 1 else 1.0
    count = int(round((high - low) / step)) + 1
    return tuple(float(low + i * step) for i in range(count))


def graph_tensors(graph: HeteroData) -> dict[str, torch.Tensor]:
    """The tensors that define a message graph (for saving with `torch.save`)."""
    tensors = {
        "user_node_id": graph["user"].node_id,
        "movie_node_id": graph["movie"].node_id,
        "movie_x": graph["movie"].x,
        "edge_index": graph[RATES].edge_index,
        "edge_label": graph[RATES].edge_label,
        "edge_attr": graph[RATES].edge_attr,
    }
    if graph["user"].get("x") is not None:
        tensors["user_x"] = graph["user"].x
    return tensors


def graph_from_tensors(tensors: dict[str, torch.Tensor]) -> HeteroData:
    """Inverse of `graph_tensors`: the same `HeteroData` layout as `build_graph`."""
    from torch_geometric.data import HeteroData

    graph = HeteroData()
    graph["user"].node_id = tensors["user_node_id"]
    graph["movie"].node_id = tensors["movie_node_id"]
    if "user_x" in tensors:
        graph["user"].x = tensors["user_x"]
    graph["movie"].x = tensors["movie_x"]
    endpoints = torch.cat([tensors["edge_index"], tensors["edge_index"][:1]])
    graph[RATES].edge_index, graph[REV_RATES].edge_index = _both_directions(endpoints)
    for edge_type in (RATES, REV_RATES):
        graph[edge_type].edge_label = tensors["edge_label"]
        graph[edge_type].edge_attr = tensors["edge_attr"]
    return graph


def _both_directions(endpoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (2, E) user→movie and movie→user edge indices as contiguous views of one
    (3, E) tensor whose rows 0 and 1 hold the users and movies: row 2 is set to the users
    here, so the reverse direction costs one row, not a second (2, E) copy (160 MB at
    ML-25M)."""
    endpoints[2] = endpoints[0]
    return endpoints[0:2], endpoints[1:3]
