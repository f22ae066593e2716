"""The training objective: a rating loss or BPR, an optional BPR term, chunked decoding.

Over a batch of B (user, movie, rating) training pairs, with N = `bpr_negatives` movies
j_1..j_N drawn uniformly for each pair, from all movies or (`bpr_exclude_rated`) from
the movies the user did not rate in training (`movierec.data.negatives`):

    BPR(u, m) = 1/N · Σ_n −log σ(ŝ(u, m) − ŝ(u, j_n))        (ŝ: the decoder's score)

    loss=bpr           mean over the batch's positives of BPR(u, m), i.e. the mean over
                       every (positive, negative) pair of −log σ(ŝ_um − ŝ_uj); the
                       positives are the pairs rated ≥ `bpr_positive_rating` (all: null)
    loss=mse|huber|…   mean rating_loss(r̂(u, m), r) + λ · 1/B · Σ_{positive (u, m)} BPR(u, m)
                       (λ = `bpr_weight`, 0 = off; non-positive pairs add 0)

plus `net.regularization` and the terms a network brings itself (`net.training_terms`,
e.g. a contrastive term), both added by the training module. Both use the one `bpr` below.
The graph is encoded once per step; the pairs are decoded in `decode_chunk_size` chunks
whose decoder activations are recomputed in backward (activation checkpointing), so a
full batch of 20M ratings needs the memory of one chunk, with the same loss and gradients
as unchunked. BPR on a net that scores by a plain dot product (`scores_by_dot`, LightGCN)
skips that recomputation: `models.dot_bpr` computes each chunk's gradient with its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from movierec.checks import check_choice, settings_node
from movierec.data.negatives import RatedPairs, draw_uniform, draw_unrated
from movierec.errors import ConfigError, MovieRecError
from movierec.models.base import NodeEmbeddings, RatingNet, RatingScores
from movierec.models.dot_bpr import dot_bpr, dot_bpr_applies

#: where the objective's settings live in the composed config (conf/model/_base_.yaml)
KEY = "model.objective"
LOSSES = ("mse", "huber", "l1", "cross_entropy", "bpr", "none")


def bpr(
    positive: torch.Tensor, negative: torch.Tensor, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Bayesian personalised ranking loss of B positives against N negatives each.

        bpr = 1/(B·N) · Σ_b keep_b · Σ_n −log σ(positive_b − negative_bn)

    Args:
        positive: (B,) scores of the positive pairs (u, m).
        negative: (B, N) scores of the same users' sampled movies (u, j_n).
        keep: (B,) bool, which pairs count (the others add 0 but stay in the mean's
            denominator, so chunks of a batch sum to the whole batch's value); None = all.
    """
    log_odds = F.logsigmoid(positive.unsqueeze(1) - negative)
    if keep is not None:
        log_odds = log_odds * keep.unsqueeze(1)
    return -log_odds.mean()


@dataclass(frozen=True)
class Objective:
    """What a training step minimises.

    Attributes:
        loss: mse | huber | l1 | cross_entropy (classification over rating levels) |
            bpr (ranking only: the mean BPR loss over the batch's positives) | none (a
            net fitted in closed form, EASE: no training step runs).
        huber_delta: Huber loss threshold in stars.
        decode_chunk_size: training pairs decoded per checkpointed chunk (0 = all at once).
        bpr_weight: weight λ of the BPR term added to a rating loss (0 = off): each
            training pair (u, m) rated ≥ `bpr_positive_rating` is pushed above
            `bpr_negatives` movies drawn uniformly from all movies each step, λ · mean
            over the batch's pairs (non-positive pairs count 0). Rating loss alone ranks
            rarely rated, well-rated movies first; the term teaches which movies a user
            would pick at all, which is what top-K ranking asks (README, Ranking objective).
        bpr_positive_rating: BPR's positives are training ratings ≥ this many stars;
            None = every rated movie.
        bpr_negatives: movies drawn per positive for BPR (N ≥ 1).
        bpr_exclude_rated: draw BPR's negatives among the movies each user did not rate
            in training (as the LightGCN paper does) instead of among all movies.
    """

    loss: str = "mse"
    huber_delta: float = 1.0
    decode_chunk_size: int = 0
    bpr_weight: float = 0.0
    bpr_positive_rating: float | None = None
    bpr_negatives: int = 1
    bpr_exclude_rated: bool = False

    def __post_init__(self) -> None:
        check_choice(f"{KEY}.loss", self.loss, LOSSES)
        if not _number(self.huber_delta) or self.huber_delta <= 0:
            raise ConfigError(f"{KEY}.huber_delta={self.huber_delta!r}: expected > 0")
        if not isinstance(self.decode_chunk_size, int) or self.decode_chunk_size < 0:
            raise ConfigError(
                f"{KEY}.decode_chunk_size={self.decode_chunk_size!r}: expected an integer ≥ 0 "
                "(0 = decode the whole batch at once)"
            )
        if not _number(self.bpr_weight) or self.bpr_weight < 0:
            raise ConfigError(f"{KEY}.bpr_weight={self.bpr_weight!r}: expected ≥ 0 (0 = off)")
        if self.loss == "bpr" and self.bpr_weight:
            raise ConfigError(
                f"{KEY}.bpr_weight={self.bpr_weight!r} adds a BPR term to a rating loss; with "
                f"{KEY}.loss=bpr the loss is BPR already: set {KEY}.bpr_weight=0"
            )
        if self.bpr_positive_rating is not None and not _number(self.bpr_positive_rating):
            raise ConfigError(
                f"{KEY}.bpr_positive_rating={self.bpr_positive_rating!r}: expected a rating in "
                "stars or null (every rated movie is a positive)"
            )
        n = self.bpr_negatives
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(
                f"{KEY}.bpr_negatives={n!r}: expected an integer ≥ 1 (movies per positive)"
            )

        if not isinstance(self.bpr_exclude_rated, bool):
            raise ConfigError(
                f"{KEY}.bpr_exclude_rated={self.bpr_exclude_rated!r}: expected true or false"
            )

    @classmethod
    def from_settings(cls, settings: Mapping | None) -> Objective:
        """The objective a `model.objective` node describes (its keys are the attributes
        above; one left out takes the default, one unknown is refused by name)."""
        return settings_node(cls, KEY, settings)

    @property
    def ranks(self) -> bool:
        """Whether the objective has a BPR part (and so draws negatives)."""
        return self.loss == "bpr" or bool(self.bpr_weight)

    def check_suits(self, net: RatingNet) -> None:
        """Refuse a loss the network does not declare, naming the key."""
        if self.loss not in net.supported_losses:
            raise ConfigError(
                f"{KEY}.loss={self.loss!r} does not suit {type(net).__name__}; expected one of "
                f"{', '.join(net.supported_losses)}"
            )

    def batch_loss(
        self,
        net: RatingNet,
        embeddings: NodeEmbeddings,
        user: torch.Tensor,
        movie: torch.Tensor,
        rating: torch.Tensor,
        n_movies: int,
        rated: RatedPairs | None = None,
    ) -> torch.Tensor:
        """Mean loss of B pairs (index tensors into `embeddings`), without regularization.

        Args:
            n_movies: how many movies the BPR negatives are drawn from (the subgraph's
                own movies for sampled batches: the encoder saw only those).
            rated: the training graph's (user, movie) pairs; with `bpr_exclude_rated`
                the negatives are drawn among each user's unrated movies (None: uniform).
        """
        if self.loss == "none":
            raise MovieRecError(
                f"{KEY}.loss=none has no gradient loss: the net fits in closed form"
            )
        if self.loss == "bpr" and self.bpr_positive_rating is not None:
            keep = rating >= self.bpr_positive_rating  # loss=bpr trains on positives only
            user, movie, rating = user[keep], movie[keep], rating[keep]
            if not len(rating):
                return embeddings.user.sum() * 0.0  # no positive in this batch
        negative = None
        if self.ranks:  # (B, N); int32 where ids fit (320 MB less for ML-25M's 80M)
            if self.bpr_exclude_rated and rated is not None:
                negative = draw_unrated(user, self.bpr_negatives, rated)
            else:
                negative = draw_uniform(len(movie), self.bpr_negatives, n_movies, movie.device)
        chunk = self.decode_chunk_size
        if (
            self.loss == "bpr"
            and net.scores_by_dot
            and dot_bpr_applies(embeddings.user, embeddings.movie, self.bpr_negatives)
        ):
            return dot_bpr(embeddings.user, embeddings.movie, user, movie, negative, chunk)
        if chunk <= 0 or len(rating) <= chunk:
            return self.pair_loss(net, embeddings.user, embeddings.movie, user, movie, rating,
                                  negative)  # fmt: skip
        total = torch.zeros((), device=rating.device)
        for start in range(0, len(rating), chunk):
            part = slice(start, start + chunk)
            mean = checkpoint(
                self.pair_loss, net, embeddings.user, embeddings.movie, user[part], movie[part],
                rating[part], None if negative is None else negative[part], use_reentrant=False,
            )  # fmt: skip
            total = total + mean * (len(rating[part]) / len(rating))
        return total

    def pair_loss(self, net, z_user, z_movie, user, movie, rating, negative=None) -> torch.Tensor:
        """Loss of B pairs against their `negative` movies (B, N) if given: the rating loss
        plus λ · BPR, or BPR alone for loss=bpr.

        BPR is a mean over all B pairs (pairs below `bpr_positive_rating` add 0 to the
        rating-loss term), so chunked decoding sums to exactly the unchunked loss."""
        embeddings = NodeEmbeddings(z_user, z_movie)
        scores = net.decode(embeddings, user, movie)
        if self.loss == "bpr":
            return bpr(scores.rating, self._negative_scores(net, embeddings, user, negative))
        loss = self.rating_loss(net, scores, rating)
        if negative is None:
            return loss
        keep = None
        if self.bpr_positive_rating is not None:
            keep = rating >= self.bpr_positive_rating
        negative_scores = self._negative_scores(net, embeddings, user, negative)
        return loss + self.bpr_weight * bpr(scores.rating, negative_scores, keep)

    @staticmethod
    def _negative_scores(net, embeddings, user, negative) -> torch.Tensor:
        """(B, N) scores of each user's N negative movies ((B,) negatives: N = 1)."""
        if negative.dim() == 1:
            negative = negative.unsqueeze(1)
        n = negative.shape[1]
        pair_user = user if n == 1 else user.repeat_interleave(n)
        return net.decode(embeddings, pair_user, negative.reshape(-1)).rating.view(-1, n)

    def rating_loss(self, net: RatingNet, scores: RatingScores, rating: torch.Tensor):
        if self.loss == "cross_entropy":
            if scores.logits is None:
                raise MovieRecError(f"{KEY}.loss=cross_entropy needs a classification decoder")
            return F.cross_entropy(scores.logits, net.rating_class(rating))
        if self.loss == "huber":
            return F.huber_loss(scores.rating, rating, delta=self.huber_delta)
        if self.loss == "l1":
            return F.l1_loss(scores.rating, rating)
        return F.mse_loss(scores.rating, rating)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
