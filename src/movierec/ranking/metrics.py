"""Top-K ranking metrics at one or more K, over user × movie score blocks, DDP-synced.

For one user with candidate movies C (not rated before the test), relevant movies
R ⊆ C (test rating ≥ the relevance threshold), the K highest-scored candidates
T = (T_1, …, T_K) and rel_i = [T_i ∈ R]:

    Precision@K = |T ∩ R| / K             (a user with fewer than K candidates still
                                           divides by K: the list shown is short)
    Recall@K    = |T ∩ R| / |R|
    HitRate@K   = 1 if |T ∩ R| > 0 else 0
    NDCG@K      = DCG / IDCG,  DCG = Σ_{i=1..K} rel_i / log2(i + 1),
                  IDCG = Σ_{i=1..min(K, |R|)} 1 / log2(i + 1)
    MAP@K       = (1 / min(K, |R|)) · Σ_{i=1..K} rel_i · Precision@i
    MRR@K       = 1 / (rank of the first relevant movie in T), 0 if T holds none

Each is averaged over the evaluated users: those with at least one relevant candidate
(recall, NDCG and MAP are undefined without one; a mean over no user is NaN).

    Coverage@K  = |∪_u T_u| / n_movies, the share of the catalogue (every movie node)
                  that is in at least one evaluated user's top K.

The per-user metrics are PyG's `torch_geometric.metrics` LinkPred classes (Precision,
Recall, NDCG, HitRatio, MAP, MRR), whose definitions are exactly these (checked in
tests/test_ranking.py): MAP@K divides by min(K, |R|) as in PyG and RecBole, *not* by
the number of hits in the top K as torchmetrics' `RetrievalMAP(top_k=K)` does, which
gives a higher value whenever the top K misses some relevant movie it had room for.
Coverage is PyG's `LinkPredCoverage` fed only candidates: PyG counts every index of the
(B, K) prediction matrix, so a user with fewer than K candidates would add non-candidate
movies; here such a list's tail repeats its first movie, which leaves the union as is.

Each of these is a torchmetrics `Metric` whose states sum (means) or take the max
(coverage's per-movie "recommended" flags) across DDP ranks, so ranks must score
disjoint users (each user's whole candidate row on one rank). Every block is scored
once and ranked once, to max(K); each K reads the first K columns of that top list.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch_geometric.metrics import (
    LinkPredCoverage,
    LinkPredHitRatio,
    LinkPredMAP,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

from movierec.errors import ConfigError


class _NanWhenEmpty:
    """A mean over no user is NaN (PyG reports 0, which reads as a measured zero)."""

    total: torch.Tensor

    def compute(self) -> torch.Tensor:
        if int(self.total) == 0:
            return torch.tensor(math.nan, device=self.total.device)
        return super().compute()  # type: ignore[misc]


class Precision(_NanWhenEmpty, LinkPredPrecision):
    pass


class Recall(_NanWhenEmpty, LinkPredRecall):
    pass


class NDCG(_NanWhenEmpty, LinkPredNDCG):
    pass


class HitRate(_NanWhenEmpty, LinkPredHitRatio):
    pass


class MAP(_NanWhenEmpty, LinkPredMAP):
    pass


class MRR(_NanWhenEmpty, LinkPredMRR):
    pass


#: metric → class of the per-user means (built as cls(k))
USER_MEANS = {
    "precision": Precision,
    "recall": Recall,
    "ndcg": NDCG,
    "hit_rate": HitRate,
    "map": MAP,
    "mrr": MRR,
}
METRICS = (*USER_MEANS, "coverage")


def metric_name(metric: str, k: int, stage: str = "test") -> str:
    """Logged name, e.g. `test/ndcg_at_10` (MLflow refuses '@' in metric names)."""
    return f"{stage}/{metric}_at_{k}"


def parse_ks(value: Any, key: str = "ranking.k") -> tuple[int, ...]:
    """`ranking.k` as ascending distinct list lengths: an int or a list of ints ≥ 1;
    0 or [] (or null) = off, `()`. Anything else is a `ConfigError` naming `key`."""
    plain = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
    if plain is None or plain == 0 or plain == []:
        return ()
    values = plain if isinstance(plain, list) else [plain]
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in values):
        raise ConfigError(
            f"{key}={plain!r}: expected an integer ≥ 1 or a list of them, e.g. [10, 20] "
            "(0 or [] = off)"
        )
    return tuple(sorted(set(values)))


class TopKRanking(torch.nn.Module):
    """Every metric of `METRICS` at every K of `ks`, fed block by block.

    In Lightning, log each entry of `items()` (`self.log(name, metric)`), which syncs
    and resets it; elsewhere read `compute()`.

    Args:
        ks: list lengths (an int or a list, see `parse_ks`; at least one K).
        n_movies: catalogue size, the denominator of coverage.
    """

    def __init__(self, ks: int | Sequence[int], n_movies: int) -> None:
        super().__init__()
        self.ks = parse_ks(ks)
        if not self.ks:
            raise ConfigError(f"ranking.k={ks!r}: TopKRanking needs at least one K ≥ 1")
        self.n_movies = int(n_movies)
        metrics: dict[str, torch.nn.Module] = {}
        for k in self.ks:
            for name, cls in USER_MEANS.items():
                metrics[f"{name}_at_{k}"] = cls(k)
            metrics[f"coverage_at_{k}"] = LinkPredCoverage(k, self.n_movies)
        self.metrics = torch.nn.ModuleDict(metrics)

    @property
    def max_k(self) -> int:
        return self.ks[-1]

    def names(self, stage: str) -> list[str]:
        """The logged names, e.g. `val/ndcg_at_10`, K by K."""
        return [f"{stage}/{short}" for short in self.metrics]

    def items(self, stage: str) -> Iterator[tuple[str, torch.nn.Module]]:
        """(logged name, torchmetrics Metric) pairs."""
        for short, metric in self.metrics.items():
            yield f"{stage}/{short}", metric

    def update(
        self, scores: torch.Tensor, candidates: torch.Tensor, relevant: torch.Tensor
    ) -> None:
        """Add one block of users.

        Args:
            scores: (B, M) float, higher = recommended first.
            candidates: (B, M) bool, movies that may be recommended.
            relevant: (B, M) bool; only relevant candidates count. Rows without one are
                not evaluated (neither in the means nor in coverage).
        """
        relevant = relevant & candidates
        counted = relevant.any(dim=1)
        if not bool(counted.any()):
            return
        if not bool(counted.all()):  # (copies of the block: only when a row drops out)
            scores, candidates, relevant = scores[counted], candidates[counted], relevant[counted]
        width = min(self.max_k, scores.shape[1])
        top = scores.masked_fill(~candidates, -math.inf).topk(width, dim=1).indices  # (B, width)
        # fewer than K candidates: the tail holds non-candidates, never relevant, so they
        # never hit; for coverage the tail repeats the list's first movie (a candidate)
        shown = torch.where(candidates.gather(1, top), top, top[:, :1])
        label = relevant.nonzero().t()  # (2, hits): block row, movie
        for short, metric in self.metrics.items():
            metric.update(shown if short.startswith("coverage") else top, label)

    def compute(self, stage: str | None = None) -> dict[str, float]:
        """`ndcg_at_10` (or `<stage>/ndcg_at_10`) → value. Collective under DDP: every
        rank must call it."""
        prefix = f"{stage}/" if stage else ""
        return {f"{prefix}{short}": float(m.compute()) for short, m in self.metrics.items()}

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
