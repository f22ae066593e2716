"""The training objective: rating loss, optional BPR ranking term, chunked decoding.

    loss = rating_loss(r̂(u, m), r) − λ · mean(log σ(r̂(u, m) − r̂(u, j)))  + net.regularization

over a batch of B (user, movie, rating) pairs, with one movie j drawn uniformly per pair
for the BPR term (λ = `bpr_weight`; 0 turns it off). The graph is encoded once per step;
the pairs are decoded in `decode_chunk_size` chunks whose decoder activations are
recomputed in backward (activation checkpointing), so a full batch of 20M ratings needs
the memory of one chunk, with the same loss and gradients as unchunked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from movierec.errors import ConfigError, MovieRecError
from movierec.models.base import NodeEmbeddings, RatingNet, RatingScores, check_choice

LOSSES = ("mse", "huber", "l1", "cross_entropy")


@dataclass(frozen=True)
class Objective:
    """What a training step minimises.

    Attributes:
        loss: mse | huber | l1 | cross_entropy (classification over rating levels).
        huber_delta: Huber loss threshold in stars.
        decode_chunk_size: training pairs decoded per checkpointed chunk (0 = all at once).
        bpr_weight: weight λ of the BPR ranking term (0 = off): for every training pair
            (u, m) with rating ≥ `bpr_positive_rating`, a movie j drawn uniformly from
            all movies each step is pushed below it, λ · mean(−log σ(r̂(u, m) − r̂(u, j)))
            over the batch's pairs (non-positive pairs count 0). Rating loss alone ranks
            rarely rated, well-rated movies first; the term teaches which movies a user
            would pick at all, which is what top-K ranking asks (README, Ranking objective).
        bpr_positive_rating: the ranking term's positives are training ratings ≥ this many
            stars; None = every rated movie.
    """

    loss: str = "mse"
    huber_delta: float = 1.0
    decode_chunk_size: int = 0
    bpr_weight: float = 0.0
    bpr_positive_rating: float | None = None

    def __post_init__(self) -> None:
        check_choice("model.loss", self.loss, LOSSES)
        if not _number(self.huber_delta) or self.huber_delta <= 0:
            raise ConfigError(f"model.huber_delta={self.huber_delta!r}: expected > 0")
        if not isinstance(self.decode_chunk_size, int) or self.decode_chunk_size < 0:
            raise ConfigError(
                f"model.decode_chunk_size={self.decode_chunk_size!r}: expected an integer ≥ 0 "
                "(0 = decode the whole batch at once)"
            )
        if not _number(self.bpr_weight) or self.bpr_weight < 0:
            raise ConfigError(f"model.bpr_weight={self.bpr_weight!r}: expected ≥ 0 (0 = off)")
        if self.bpr_positive_rating is not None and not _number(self.bpr_positive_rating):
            raise ConfigError(
                f"model.bpr_positive_rating={self.bpr_positive_rating!r}: expected a rating in "
                "stars or null (every rated movie is a positive)"
            )

    def check_suits(self, net: RatingNet) -> None:
        """Refuse a loss the network does not declare, naming the key."""
        if self.loss not in net.supported_losses:
            raise ConfigError(
                f"model.loss={self.loss!r} does not suit {type(net).__name__}; expected one of "
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
    ) -> torch.Tensor:
        """Mean loss of B pairs (index tensors into `embeddings`), without regularization.

        Args:
            n_movies: how many movies the BPR negatives are drawn from (the subgraph's
                own movies for sampled batches: the encoder saw only those).
        """
        negative = None
        if self.bpr_weight:
            negative = torch.randint(n_movies, movie.shape, device=movie.device)
        chunk = self.decode_chunk_size
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
        """Rating loss of B pairs, plus the BPR term against `negative` movies (B,) if given.

        The BPR term is a mean over all B pairs (pairs below `bpr_positive_rating` add 0),
        so chunked decoding sums to exactly the unchunked loss."""
        embeddings = NodeEmbeddings(z_user, z_movie)
        scores = net.decode(embeddings, user, movie)
        loss = self.rating_loss(net, scores, rating)
        if negative is None:
            return loss
        negative_rating = net.decode(embeddings, user, negative).rating
        log_odds = F.logsigmoid(scores.rating - negative_rating)
        if self.bpr_positive_rating is not None:
            log_odds = log_odds * (rating >= self.bpr_positive_rating)
        return loss - self.bpr_weight * log_odds.mean()

    def rating_loss(self, net: RatingNet, scores: RatingScores, rating: torch.Tensor):
        if self.loss == "cross_entropy":
            if scores.logits is None:
                raise MovieRecError("model.loss=cross_entropy needs a classification decoder")
            return F.cross_entropy(scores.logits, net.rating_class(rating))
        if self.loss == "huber":
            return F.huber_loss(scores.rating, rating, delta=self.huber_delta)
        if self.loss == "l1":
            return F.l1_loss(scores.rating, rating)
        return F.mse_loss(scores.rating, rating)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
