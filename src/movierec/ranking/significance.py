"""Per-user ranking metrics and the paired tests that compare models on them.

A model's test NDCG@10 is a mean over users; two models ranked for the same users give
one pair of values per user, so whether one is better beyond noise is a paired test over
those users: the Wilcoxon signed-rank test (SciPy) on the per-user differences, as in
RecBole's and the field's significance reports. Several models tested against one best
model are corrected for multiple comparisons by Holm's step-down method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from movierec.ranking.metrics import TopKRanking

#: per-user test metrics, beside metrics.json in a run folder and in its MLflow run
PER_USER_FILE = "test_per_user.csv"


def write_per_user(ranking: TopKRanking | None, user_ids: np.ndarray, path: Path) -> None:
    """`ranking`'s per-user values as CSV (userId, precision_at_10, ndcg_at_10, …; one
    row per evaluated user, original ids from `user_ids`[user index]), written whole or
    not at all; nothing when no user was ranked."""
    values = {} if ranking is None else ranking.per_user_values()
    if not values:
        return
    table = pd.DataFrame({k: v.numpy() for k, v in values.items()})
    table.insert(0, "userId", np.asarray(user_ids)[table.pop("user").to_numpy()])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    table.sort_values("userId").to_csv(temporary, index=False, float_format="%.6g")
    temporary.replace(path)


def wilcoxon_p(values: np.ndarray, baseline: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on paired values (n,) and
    (n,); 1.0 when every difference is zero (nothing to tell apart)."""
    from scipy.stats import wilcoxon

    differences = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    if not np.any(differences):
        return 1.0
    return float(wilcoxon(differences, zero_method="wilcox").pvalue)


def holm(p_values: list[float], alpha: float = 0.05) -> list[bool]:
    """Which of m hypotheses are rejected at family-wise level `alpha` (Holm 1979): the
    i-th smallest p (0-based) must be ≤ alpha / (m − i), stopping at the first that is
    not."""
    order = np.argsort(p_values, kind="stable")
    rejected = [False] * len(p_values)
    for i, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - i):
            break
        rejected[index] = True
    return rejected
