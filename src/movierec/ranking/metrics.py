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
from torch_geometric.metrics.link_pred import LinkPredMetricData

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
        per_user: also keep each evaluated user's value of every per-user metric
            (`per_user_values`), for paired significance tests between models.
    """

    def __init__(self, ks: int | Sequence[int], n_movies: int, per_user: bool = False) -> None:
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
        self.per_user = per_user
        self._per_user: dict[str, list[torch.Tensor]] = {}

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
        """Add one block of users, given as dense masks (see `update_pairs`).

        Args:
            scores: (B, M) float, higher = recommended first.
            candidates: (B, M) bool, movies that may be recommended.
            relevant: (B, M) bool; only relevant candidates count. Rows without one are
                not evaluated (neither in the means nor in coverage).
        """
        excluded = (~candidates).nonzero().unbind(1)
        self.update_pairs(scores, excluded, relevant.nonzero().unbind(1))

    def update_pairs(
        self,
        scores: torch.Tensor,
        excluded: tuple[torch.Tensor, torch.Tensor],
        relevant: tuple[torch.Tensor, torch.Tensor],
        users: torch.Tensor | None = None,
    ) -> None:
        """Add one block of users whose exclusions and relevant movies are (row, movie)
        index pairs, as `UserItems.pairs` gives them: a user rates a few hundred of
        ML-25M's 59k movies, so dense (B, M) masks would cost more than the ranking.

        Args:
            scores: (B, M) float, higher = recommended first (not modified).
            excluded: (P,) rows, (P,) movies that may not be recommended.
            relevant: (R,) rows, (R,) movies; only relevant movies that are not excluded
                count. Rows without one are not evaluated (neither in the means nor in
                coverage).
            users: (B,) the rows' user indices, kept with their values when `per_user`.
        """
        n_rows, n_movies = scores.shape
        device = scores.device
        excluded_row, excluded_movie = excluded[0].to(device), excluded[1].to(device)
        excluded_key = excluded_row * n_movies + excluded_movie
        # a relevant movie counts once (as in a mask), and only when it is a candidate
        relevant_key = torch.unique(relevant[0].to(device) * n_movies + relevant[1].to(device))
        relevant_key = relevant_key[~torch.isin(relevant_key, excluded_key)]
        relevant_row, relevant_movie = relevant_key // n_movies, relevant_key % n_movies
        counted = torch.zeros(n_rows, dtype=torch.bool, device=device)
        counted[relevant_row] = True
        if not bool(counted.any()):
            return
        masked = scores.index_put(
            (excluded_row, excluded_movie),
            torch.tensor(-math.inf, dtype=scores.dtype, device=device),
        )
        if not bool(counted.all()):  # a copy of the block: only when a row drops out
            masked = masked[counted]
            relevant_row = (torch.cumsum(counted, 0) - 1)[relevant_row]
            excluded_key = _kept_rows(excluded_key, counted, n_movies)
        width = min(self.max_k, n_movies)
        top = masked.topk(width, dim=1).indices  # (B, width)
        # fewer than K candidates: the tail holds excluded movies, never relevant, so they
        # never hit; for coverage the tail repeats the list's first movie (a candidate)
        rows = torch.arange(len(top), device=device).unsqueeze(1)
        shown_excluded = torch.isin(rows * n_movies + top, excluded_key)
        shown = torch.where(shown_excluded, top[:, :1], top)
        label = torch.stack([relevant_row, relevant_movie])  # (2, hits): block row, movie
        for short, metric in self.metrics.items():
            metric.update(shown if short.startswith("coverage") else top, label)
        if self.per_user and users is not None:
            self._keep_per_user(top, label, users.to(device)[counted])

    def _keep_per_user(self, top: torch.Tensor, label: torch.Tensor, users: torch.Tensor):
        """Each row's value of every per-user metric (PyG's own per-row `_compute`)."""
        data = LinkPredMetricData(pred_index_mat=top, edge_label_index=label)
        kept = self._per_user.setdefault("user", [])
        kept.append(users.cpu())
        for short, metric in self.metrics.items():
            if not short.startswith("coverage"):
                values = metric._compute(data)  # (B',) per evaluated row
                self._per_user.setdefault(short, []).append(values.detach().cpu())

    def per_user_values(self) -> dict[str, torch.Tensor]:
        """{"user": (U,) user indices, "ndcg_at_10": (U,) values, …} of the users
        evaluated so far on this process (empty unless `per_user`)."""
        return {name: torch.cat(parts) for name, parts in self._per_user.items()}

    def compute(self, stage: str | None = None) -> dict[str, float]:
        """`ndcg_at_10` (or `<stage>/ndcg_at_10`) → value. Collective under DDP: every
        rank must call it."""
        prefix = f"{stage}/" if stage else ""
        return {f"{prefix}{short}": float(m.compute()) for short, m in self.metrics.items()}

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
        self._per_user = {}


def _kept_rows(key: torch.Tensor, kept: torch.Tensor, n_movies: int) -> torch.Tensor:
    """Flat (row · n_movies + movie) keys of the rows in `kept` (B,) bool, renumbered as
    rows of the block without the others."""
    row = key // n_movies
    inside = kept[row]
    new_row = (torch.cumsum(kept, 0) - 1)[row[inside]]
    return new_row * n_movies + key[inside] % n_movies
