"""A second output on a rating network's encoder: a ranking score trained with BPR.

A rating decoder answers "how many stars would this user give this movie"; top-K ranking
asks "which movies will this user watch and like", which the rating does not order well
(a movie rated 5 by its two viewers outranks every film most users watched). A network
with `model.net.ranking=dot` keeps its rating decoder and adds

    s(u, m) = (z_u A) · (z_m B) + c_m           A, B: (d, k) learned projections,
                                                c_m: a learned per-movie offset

on the same encoded tables z (the shared encoder), trained with BPR over the training
graph's rated movies as positives and, for each, `ranking_negatives` movies the user did
not rate (`movierec.data.negatives`):

    term = λ · 1/(B·N) · Σ_b Σ_n −log σ(s(u_b, m_b) − s(u_b, j_bn))     (λ = ranking_weight)

added to the rating loss by the training module (`RatingNet.training_terms`), so both
losses' gradients reach the encoder. The network then ranks by s (`score_users`) and
still rates in stars (`decode(...).rating`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from movierec.checks import check_choice, check_positive
from movierec.data.graph import RATES
from movierec.data.negatives import RatedPairs, draw_unrated
from movierec.errors import ConfigError
from movierec.models.adjacency import GraphCache

RANKING = ("none", "dot")


class RankingOutput(nn.Module):
    """s(u, m) over encoded tables of width `width`, and its BPR training term.

    Args:
        width: width d of the encoder's user and movie tables.
        dim: width k of the projected tables the score is a dot product of.
        weight: λ of the BPR term (> 0).
        negatives: unrated movies drawn per positive (≥ 1).
        n_movies: the movie index space (the negatives' and `RatedPairs`' keys).
    """

    def __init__(self, width: int, dim: int, weight: float, negatives: int, n_movies: int):
        super().__init__()
        check_positive("model.net.ranking_dim", dim)
        check_positive("model.net.ranking_weight", weight)
        if not isinstance(negatives, int) or isinstance(negatives, bool) or negatives < 1:
            raise ConfigError(
                f"model.net.ranking_negatives={negatives!r}: expected an integer ≥ 1 "
                "(unrated movies drawn per positive)"
            )
        self.user = nn.Linear(width, dim, bias=False)
        self.movie = nn.Linear(width, dim, bias=False)
        self.movie_offset = nn.Parameter(torch.zeros(n_movies))
        self.weight = float(weight)
        self.negatives = int(negatives)
        self.n_movies = int(n_movies)
        self._rated = GraphCache()  # the graph's rated pairs, what negatives avoid

    def pairs(self, z_user, z_movie, user, movie) -> torch.Tensor:
        """s(u, m) of index pairs (B,)."""
        return (self.user(z_user[user]) * self.movie(z_movie[movie])).sum(-1) + self.movie_offset[
            movie
        ]

    def grid(self, z_user: torch.Tensor, z_movie: torch.Tensor, users: torch.Tensor):
        """s of every movie for each user index, (B, n_movies): one matrix product."""
        users = users.to(z_user.device)
        return self.user(z_user[users]) @ self.movie(z_movie).T + self.movie_offset

    def term(self, graph, z_user, z_movie, user, movie) -> torch.Tensor:
        """λ · BPR of the batch's pairs against unrated movies of the same users."""
        negative = draw_unrated(user, self.negatives, self.rated_pairs(graph)).long()
        positive = self.pairs(z_user, z_movie, user, movie)
        pair_user = user.repeat_interleave(self.negatives)
        scores = self.pairs(z_user, z_movie, pair_user, negative.reshape(-1))
        negative_scores = scores.view(-1, self.negatives)
        return -self.weight * F.logsigmoid(positive.unsqueeze(1) - negative_scores).mean()

    def rated_pairs(self, graph) -> RatedPairs:
        """The message graph's (user, movie) pairs, built once per graph."""
        edges = graph[RATES].edge_index
        return self._rated.get(graph, None, lambda: RatedPairs(*edges, self.n_movies))


def ranking_output(
    kind: str, width: int, dim: int, weight: float, negatives: int, n_movies: int
) -> RankingOutput | None:
    """The `model.net.ranking` output (`none`: None, the net ranks by its rating)."""
    check_choice("model.net.ranking", kind, RANKING)
    if kind == "none":
        return None
    return RankingOutput(width, dim, weight, negatives, n_movies)


class WithRankingOutput:
    """Mixin of a `RatingNet` (listed before it) that may carry a ranking output: the
    net ranks by that output's score, trains it with its BPR term and keeps it out of
    weight decay; without one it ranks by its predicted rating as before."""

    # set by attach_ranking; no class-level default, which would shadow the submodule
    # nn.Module keeps in _modules
    ranking: RankingOutput | None

    def attach_ranking(
        self, kind: str, width: int, dim: int, weight: float, negatives: int, n_movies: int
    ) -> None:
        """Build the `model.net.ranking` output over `width`-wide encoder tables."""
        self.ranking = ranking_output(kind, width, dim, weight, negatives, n_movies)
        if self.ranking is not None:
            self.ranks_by_score = True
            self.ranking_block_pairs = 2**22  # one (B, k) × (k, n_movies) product

    def no_weight_decay(self) -> set[str]:
        """The ranking output's parameters (see `RatingNet.no_weight_decay`)."""
        if self.ranking is None:
            return set()
        return {f"ranking.{name}" for name, _ in self.ranking.named_parameters()}

    def training_terms(self, graph, embeddings, user, movie) -> dict[str, torch.Tensor]:
        """The ranking output's BPR term (`model.net.ranking=dot`), else none."""
        if self.ranking is None:
            return {}
        return {"ranking": self.ranking.term(graph, embeddings.user, embeddings.movie, user, movie)}

    @torch.no_grad()
    def score_users(self, embeddings, users: torch.Tensor) -> torch.Tensor:
        """The ranking output's scores with `ranking=dot`, else the predicted ratings."""
        if self.ranking is None:
            return super().score_users(embeddings, users)  # type: ignore[misc]
        return self.ranking.grid(embeddings.user, embeddings.movie, users)
