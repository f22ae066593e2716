"""The interface every network implements, and what each one declares it can do.

Splitting `encode` from `decode` lets evaluation and recommendation encode the graph once
and score many (user, movie) pairs, e.g. every movie for one user. Everything outside
`models/` (the objective, ranking, training, serving) talks to a network only through
this class: its declared capabilities (`predicts_ratings`, `inductive`,
`supported_losses`), `score_users` (every movie for a block of users) and
`embed_new_user` (a user given at request time). No other package names a model class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from movierec.config import build
from movierec.data.graph import GraphSchema, graph_from_tensors, graph_tensors
from movierec.errors import ConfigError, MovieRecError

if TYPE_CHECKING:  # annotations only: this module (and `models.heads`) import no PyG
    from torch_geometric.data import HeteroData

    from movierec.models.heads import ScoringHead


@dataclass
class NodeEmbeddings:
    """Encoder output: user (n_users, d_user) and movie (n_movies, d_movie) float tensors.

    `new_user_bias`: the rating offsets b_u (k,) of the last k users, users folded in at
    request time past a network's learned offset table (`models.fold_in`); None: none."""

    user: torch.Tensor
    movie: torch.Tensor
    new_user_bias: torch.Tensor | None = field(default=None, kw_only=True)


@dataclass
class RatingScores:
    """Decoder output for B pairs.

    Attributes:
        rating: (B,) predicted rating in stars, not clamped (clamping kills gradients).
        logits: (B, L) scores over `schema.rating_levels` for classification decoders.
    """

    rating: torch.Tensor
    logits: torch.Tensor | None = None


class ColdStartUnsupported(MovieRecError):
    """The model cannot embed a user it was not trained with."""


class RatingNet(nn.Module):
    """Base class: `forward(graph, user, movie)` = `decode(encode(graph), user, movie)`.

    A subclass declares what it can do with the class attributes below and overrides
    `score_users` / `embed_new_user` where it has something better than the defaults.
    """

    #: losses this network can be trained with (the first is its default).
    supported_losses: tuple[str, ...] = ("mse", "huber", "l1")
    #: whether `decode(...).rating` is a rating in stars (RMSE/MAE are meaningful);
    #: False for networks that only rank (their score orders movies, nothing more).
    predicts_ratings: bool = True
    #: whether `encode` works on any subgraph (sampled batches, new nodes), not only the
    #: full training graph it was built for.
    inductive: bool = False
    #: (user, movie) scores per block when ranking every movie for blocks of users
    #: (`ranking.scoring`): the default decodes each pair, whose activations bound it; a
    #: net whose `score_users` is one (B, d) × (d, n_movies) product affords more.
    ranking_block_pairs: int = 2**18
    #: whether `decode(...).rating` is exactly z_user[u] · z_movie[m] of the encoded
    #: tables (no weights, no biases): BPR then runs as one fused pass that computes its
    #: gradient with its value (`models.dot_bpr`) instead of checkpointed decoding.
    scores_by_dot: bool = False
    #: whether `score_users` is a ranking score of its own, distinct from the rating
    #: `decode` predicts (a second output, `models.ranking_output`): the net then ranks
    #: by that score and still rates in stars (recommendations show both).
    ranks_by_score: bool = False
    #: whether training steps optimise parameters by gradient; False for a net fitted in
    #: closed form in `start_epoch` (EASE), whose training steps are skipped.
    trains_by_gradient: bool = True

    def __init__(self, schema: GraphSchema) -> None:
        super().__init__()
        self.schema = schema

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        raise NotImplementedError

    def prepare(self, graph: HeteroData) -> None:
        """Build what the net derives from the message `graph` once (its normalized
        adjacency) before training starts, so that the first epoch costs what every later
        one does. `encode` builds whatever is missing, so this only moves the work."""

    def decode(
        self, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> RatingScores:
        raise NotImplementedError

    def forward(self, graph: HeteroData, user: torch.Tensor, movie: torch.Tensor) -> RatingScores:
        return self.decode(self.encode(graph), user, movie)

    def regularization(self, user: torch.Tensor, movie: torch.Tensor) -> torch.Tensor:
        """Extra loss term for a batch of pairs (0 unless a model defines one)."""
        return torch.zeros((), device=user.device)

    def training_terms(
        self, graph: HeteroData, embeddings: NodeEmbeddings, user: torch.Tensor, movie: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Loss terms this network adds to the objective for a training batch, by name.

        Each is a scalar added to the step's loss and logged as `train/<name>` (per epoch).
        A model brings its own terms here (a contrastive InfoNCE term, a second output's
        loss) with no change to the objective or the training loop.

        Args:
            graph: the message graph `embeddings` were encoded from (in training mode).
            embeddings: `self.encode(graph)` of this step.
            user, movie: (B,) index tensors of the batch's training pairs.
        """
        return {}

    def no_weight_decay(self) -> set[str]:
        """Names of parameters `model.weight_decay` leaves alone (none by default): a
        ranking output's, whose BPR gradients per movie are far smaller than the L2 pull
        on a movie rarely drawn, which would keep its scores near 0."""
        return set()

    def start_epoch(self, epoch: int) -> None:
        """Called before each training epoch (0-based); a closed-form net fits here."""

    def rating_class(self, rating: torch.Tensor) -> torch.Tensor:
        """Index of each rating in `schema.rating_levels` (for classification losses), (B,)."""
        levels = self.schema.rating_levels
        step = levels[1] - levels[0] if len(levels) > 1 else 1.0
        index = torch.round((rating - levels[0]) / step).long()
        return index.clamp_(0, len(levels) - 1)

    # ------------------------------------------------------------------ ranking

    @torch.no_grad()
    def score_users(self, embeddings: NodeEmbeddings, users: torch.Tensor) -> torch.Tensor:
        """Unclamped score of every movie for each user index, (B, n_movies).

        The default decodes all B × n_movies pairs in one call (callers bound B, see
        `ranking.scoring.user_chunks`); a model with a cheaper form (a dot product)
        overrides it. Ranking uses the unclamped value so movies predicted above the top
        of the scale stay ordered instead of tying at the maximum.
        """
        return pair_scores(
            lambda zu, zm, u, m: (
                self.decode(
                    NodeEmbeddings(zu, zm, new_user_bias=embeddings.new_user_bias), u, m
                ).rating,
            ),
            embeddings.user,
            embeddings.movie,
            users,
        )

    def scoring_head(self) -> ScoringHead | None:
        """`decode` as a `models.heads` module over the embedding tables (sharing this
        network's decoder weights), or None when the network has none to offer.

        A bundle stores the head with the tables encoded once, so the recommend command
        ranks a known user without building this network (`serving.snapshot`).
        """
        return None

    # ------------------------------------------------------------------ new users

    @property
    def accepts_new_users(self) -> bool:
        """Whether `embed_new_user` works for this instance (its settings may rule it out)."""
        return self.new_user_refusal() is None

    def subgraph_refusal(self) -> str | None:
        """Why this model cannot train on sampled subgraphs (`data.loader=neighbor`; None:
        it can). The default: an inductive encoder can, a transductive one cannot."""
        return None if self.inductive else "it is transductive"

    def new_user_refusal(self) -> str | None:
        """Why this model cannot embed a user it was not trained with (None: it can).

        The default: an inductive encoder can (the user joins the graph, see
        `embed_new_user`); a transductive one cannot.
        """
        if self.inductive:
            return None
        return "its encoder is transductive: it encodes only the graph it was trained on"

    @torch.no_grad()
    def embed_new_user(
        self,
        graph: HeteroData,
        embeddings: NodeEmbeddings,
        movies: torch.Tensor,
        stars: torch.Tensor,
    ) -> tuple[NodeEmbeddings, int]:
        """Embeddings with one new user appended, and that user's index.

        The default (inductive models): the user is added to the message graph as a node
        with the given ratings as edges, its input features the mean of the training
        users' (an "average user"), and the graph is encoded again.

        Args:
            graph: the training message graph.
            embeddings: `self.encode(graph)`.
            movies: (N,) int64 movie indices the user rated; stars: (N,) their ratings.

        Raises:
            ColdStartUnsupported: with `new_user_refusal()` as the reason.
        """
        reason = self.new_user_refusal()
        if reason is not None:
            raise ColdStartUnsupported(
                f"{type(self).__name__} cannot embed a user it was not trained with ({reason})"
            )
        return self.encode(graph_with_user(graph, movies, stars, self.schema.rating_scale)), len(
            embeddings.user
        )


def pair_scores(decode, z_user, z_movie, users: torch.Tensor) -> torch.Tensor:
    """`decode(z_user, z_movie, user, movie)[0]` over every (user in `users`, movie)
    pair, as (B, n_movies)."""
    n_movies = z_movie.shape[0]
    users = users.to(z_user.device)
    pair_user = users.repeat_interleave(n_movies)
    pair_movie = torch.arange(n_movies, device=users.device).repeat(len(users))
    return decode(z_user, z_movie, pair_user, pair_movie)[0].view(len(users), n_movies)


def graph_with_user(
    graph: HeteroData, movies: torch.Tensor, stars: torch.Tensor, rating_scale: tuple[float, float]
) -> HeteroData:
    """`graph` with one more user node (mean user features) rating `movies` with `stars`."""
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
    return graph_from_tensors(tensors)


def embedding_rows(table: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
    """table(index), (*index.shape, d), by `index_select`, whose backward is one index_add_.
    torch's CPU Embedding backward scans every index once per 1,000 table rows: 1M
    lookups into ML-25M's 162,541 users took 100 ms to differentiate against 4 ms (one
    column, 2026-12-03), 389 against 217 ms 64 wide; the gradients are bit for bit the
    same. For tables without padding_idx, max_norm or scale_grad_by_freq (all here)."""
    rows = table.weight.index_select(0, index.reshape(-1))
    return rows.view(*index.shape, table.embedding_dim)


def build_net(net_cfg: dict, schema: GraphSchema) -> RatingNet:
    """The network `net_cfg` names by `_target_` (any importable `RatingNet` subclass),
    built for `schema`; a wrong target or argument is a `ConfigError` naming model.net."""
    net = build(net_cfg, "model.net", schema=schema)
    if not isinstance(net, RatingNet):
        raise ConfigError(f"model.net._target_ must build a RatingNet, got {type(net).__name__}")
    return net
