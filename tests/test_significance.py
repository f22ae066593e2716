"""Per-user ranking metrics and the paired tests that compare models on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from movierec.ranking.metrics import TopKRanking
from movierec.ranking.significance import holm, wilcoxon_p, write_per_user


def test_per_user_values_average_to_every_metric_and_name_their_users(tmp_path):
    torch.manual_seed(0)
    ranking = TopKRanking([3, 5], n_movies=12, per_user=True)
    for block in (torch.arange(0, 4), torch.arange(4, 9)):
        scores = torch.randn(len(block), 12)
        relevant = torch.rand(len(block), 12) < 0.3
        relevant[0] = False  # a user without a relevant movie is not evaluated
        ranking.update_pairs(scores, (torch.tensor([0]), torch.tensor([1])),
                             relevant.nonzero().unbind(1), block)  # fmt: skip
    values = ranking.per_user_values()
    assert sorted(values["user"].tolist()) == [1, 2, 3, 5, 6, 7, 8]
    for name, mean in ranking.compute().items():
        if not name.startswith("coverage"):
            assert values[name].mean().item() == pytest.approx(mean, abs=1e-6), name
    ids = np.arange(100, 109)
    write_per_user(ranking, ids, tmp_path / "per_user.csv")
    table = pd.read_csv(tmp_path / "per_user.csv")
    assert table["userId"].tolist() == [101, 102, 103, 105, 106, 107, 108]


def test_wilcoxon_p_matches_the_exact_distribution_by_hand():
    # five positive differences: the most extreme of 2^5 sign patterns, two-sided
    assert wilcoxon_p(np.array([2.0, 4, 6, 8, 10]), np.array([1.0, 2, 3, 4, 5])) == pytest.approx(
        2 / 32
    )
    assert wilcoxon_p(np.ones(4), np.ones(4)) == 1.0


def test_holm_stops_at_the_first_hypothesis_it_cannot_reject():
    # sorted: 0.005 ≤ 0.05/4, 0.01 ≤ 0.05/3, 0.03 > 0.05/2 → stop
    assert holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    assert holm([]) == []
