"""Top-K ranking metrics over a user × movie score block, and their DDP-synced means.

For one user with candidate movies C (not rated before the test), relevant movies
R ⊆ C (test rating ≥ the relevance threshold) and the K highest-scored candidates T:

    Precision@K = |T ∩ R| / K
    Recall@K    = |T ∩ R| / |R|
    HitRate@K   = 1 if |T ∩ R| > 0 else 0
    NDCG@K      = DCG / IDCG,  DCG = Σ_{i=1..K} [T_i ∈ R] / log2(i + 1),
                  IDCG = Σ_{i=1..min(K, |R|)} 1 / log2(i + 1)

Reported values are means over the users with at least one relevant movie (users with
none are skipped: recall and NDCG are undefined for them). These are the definitions of
torchmetrics' `RetrievalPrecision`, `RetrievalRecall`, `RetrievalHitRate` and
`RetrievalNormalizedDCG` with binary targets; they are computed here on a whole block
at once, because the torchmetrics classes keep every candidate score of every user until
`compute()` (n_users × n_movies values) and then loop over users in Python.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import MeanMetric

METRICS = ("precision", "recall", "ndcg", "hit_rate")


def metric_name(metric: str, k: int, stage: str = "test") -> str:
    """Logged name, e.g. `test/ndcg_at_10` (MLflow refuses '@' in metric names)."""
    return f"{stage}/{metric}_at_{k}"


def topk_metrics(
    scores: torch.Tensor, candidates: torch.Tensor, relevant: torch.Tensor, k: int
) -> dict[str, torch.Tensor]:
    """Per-user metrics of one block.

    Args:
        scores: (B, M) float, higher = recommended first.
        candidates: (B, M) bool, movies that may be recommended.
        relevant: (B, M) bool; only relevant candidates count.
        k: list length (≥ 1).

    Returns:
        name → (B,) float32 for each of `METRICS`; rows without relevant candidates are 0.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected ≥ 1")
    relevant = relevant & candidates
    width = min(k, scores.shape[1])
    top = scores.masked_fill(~candidates, -math.inf).topk(width, dim=1).indices  # (B, width)
    # a user with fewer than k candidates gets non-candidates at the tail: never hits
    hit = (relevant.gather(1, top) & candidates.gather(1, top)).float()
    n_relevant = relevant.sum(dim=1)
    hits = hit.sum(dim=1)
    discount = 1.0 / torch.log2(torch.arange(width, device=scores.device, dtype=torch.float32) + 2)
    dcg = (hit * discount).sum(dim=1)
    ideal_cumulative = torch.cat([discount.new_zeros(1), discount.cumsum(0)])
    idcg = ideal_cumulative[n_relevant.clamp(max=width)]
    return {
        "precision": hits / k,
        "recall": torch.where(n_relevant > 0, hits / n_relevant.clamp(min=1), 0.0),
        "ndcg": torch.where(idcg > 0, dcg / idcg.clamp(min=1e-12), 0.0),
        "hit_rate": (hits > 0).float(),
    }


class TopKRanking(torch.nn.Module):
    """A torchmetrics `MeanMetric` per metric of `METRICS`, over users with ≥ 1 relevant movie.

    MeanMetric sums values and counts across DDP ranks, so ranks must score disjoint
    sets of users (each user's whole candidate row on one rank). In Lightning, log the
    entries of `means` (`self.log(name, metric)`); elsewhere read `compute()`.
    """

    def __init__(self, k: int = 10) -> None:
        super().__init__()
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k={k!r}: expected an integer ≥ 1")
        self.k = k
        self.means = torch.nn.ModuleDict({name: MeanMetric() for name in METRICS})

    def update(
        self, scores: torch.Tensor, candidates: torch.Tensor, relevant: torch.Tensor
    ) -> None:
        """Add one block's users (see `topk_metrics` for the shapes)."""
        values = topk_metrics(scores, candidates, relevant, self.k)
        counted = (relevant & candidates).any(dim=1)
        if counted.any():
            for name in METRICS:
                self.means[name].update(values[name][counted])

    def compute(self) -> dict[str, float]:
        """name → mean over the counted users (NaN when none was counted).

        Collective under DDP: every rank must call it.
        """
        return {name: float(self.means[name].compute()) for name in METRICS}

    def reset(self) -> None:
        for metric in self.means.values():
            metric.reset()
