"""Ranking metrics, per-user item sets, the popularity baseline and the test protocol."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from torchmetrics.retrieval import (
    RetrievalHitRate,
    RetrievalNormalizedDCG,
    RetrievalPrecision,
    RetrievalRecall,
)

from movierec.config import build
from movierec.data.datamodule import MovieLensDataModule
from movierec.data.splits import PredefinedSplit, RandomSplit
from movierec.ranking.metrics import TopKRanking, metric_name, topk_metrics
from movierec.ranking.popularity import Popularity
from movierec.ranking.protocol import RankingProtocol
from movierec.ranking.scoring import evaluate_ranking, user_chunks
from movierec.ranking.user_items import UserItems
from movierec.tasks.popular_baseline import evaluate_popularity
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import TINY_DATA, compose_train

LOG2_3 = math.log2(3)


def _hand_example():
    """3 users × 6 movies, K = 3 (worked out in `test_metrics_on_a_hand_computed_example`)."""
    scores = torch.tensor(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            [0.5, 0.5, 0.1, 0.9, 0.2, 0.3],
        ]
    )
    candidates = torch.ones(3, 6, dtype=torch.bool)
    candidates[0, 0] = False  # user 0 rated movie 0 in training: not a candidate
    candidates[1, 5] = False
    relevant = torch.zeros(3, 6, dtype=torch.bool)
    relevant[0, [2, 5]] = True
    relevant[1, [5, 0]] = True  # movie 5 was rated in training: it cannot count
    return scores, candidates, relevant


def test_metrics_on_a_hand_computed_example():
    scores, candidates, relevant = _hand_example()
    values = topk_metrics(scores, candidates, relevant, k=3)
    # user 0: top-3 candidates 1, 2, 3 (movie 0 excluded); relevant {2, 5}: one hit at rank 2
    #   P = 1/3, R = 1/2, HR = 1, DCG = 1/log2(3), IDCG = 1 + 1/log2(3)
    # user 1: top-3 candidates 4, 3, 2; relevant {0} (5 is not a candidate): no hit
    # user 2: no relevant movie: all zero (and skipped by the means)
    expected = {
        "precision": [1 / 3, 0.0, 0.0],
        "recall": [1 / 2, 0.0, 0.0],
        "hit_rate": [1.0, 0.0, 0.0],
        "ndcg": [(1 / LOG2_3) / (1 + 1 / LOG2_3), 0.0, 0.0],
    }
    for name, want in expected.items():
        assert values[name].tolist() == pytest.approx(want), name
    ranking = TopKRanking(k=3)
    ranking.update(scores, candidates, relevant)
    means = ranking.compute()
    # the means skip user 2, who has nothing relevant: (user 0 + user 1) / 2
    assert means["precision"] == pytest.approx(1 / 6)
    assert means["recall"] == pytest.approx(1 / 4)
    assert means["hit_rate"] == pytest.approx(1 / 2)
    assert means["ndcg"] == pytest.approx(0.5 * (1 / LOG2_3) / (1 + 1 / LOG2_3))


def test_ndcg_ideal_list_is_cut_at_k_and_short_lists_count_k():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    relevant = torch.tensor([[True, False, True, True, True]])
    values = topk_metrics(scores, torch.ones_like(relevant), relevant, k=2)
    # hits at ranks 1 (movie 0) only; IDCG over min(K, |R|) = 2 positions
    assert values["ndcg"].item() == pytest.approx(1 / (1 + 1 / LOG2_3))
    assert values["recall"].item() == pytest.approx(1 / 4)
    # two candidates but K = 5: precision still divides by K
    few = torch.tensor([[True, True, False, False, False]])
    values = topk_metrics(scores, few, relevant, k=5)
    assert values["precision"].item() == pytest.approx(1 / 5)
    assert values["hit_rate"].item() == 1.0


@pytest.mark.parametrize("k", [1, 5, 10])
def test_definitions_match_torchmetrics_retrieval(k: int):
    generator = torch.Generator().manual_seed(k)
    n_users, n_movies = 40, 30
    scores = torch.rand(n_users, n_movies, generator=generator) + 0.01  # positive, no ties
    candidates = torch.rand(n_users, n_movies, generator=generator) > 0.3
    relevant = (torch.rand(n_users, n_movies, generator=generator) > 0.8) & candidates
    ours = TopKRanking(k)
    for chunk in torch.arange(n_users).split(7):  # in blocks, as training does
        ours.update(scores[chunk], candidates[chunk], relevant[chunk])
    # torchmetrics sees each user's candidates only, grouped by the user index
    user = torch.arange(n_users).unsqueeze(1).expand(-1, n_movies)
    preds, target, indexes = scores[candidates], relevant[candidates], user[candidates]
    reference = {
        "precision": RetrievalPrecision(top_k=k, empty_target_action="skip"),
        "recall": RetrievalRecall(top_k=k, empty_target_action="skip"),
        "ndcg": RetrievalNormalizedDCG(top_k=k, empty_target_action="skip"),
        "hit_rate": RetrievalHitRate(top_k=k, empty_target_action="skip"),
    }
    computed = ours.compute()
    for name, metric in reference.items():
        want = float(metric(preds, target, indexes=indexes))
        assert computed[name] == pytest.approx(want, abs=1e-6), name


def test_sharded_users_merge_to_the_whole():
    """DDP: ranks rank disjoint user shards; summed states equal one process's."""
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(23, 15, generator=generator)
    candidates = torch.ones(23, 15, dtype=torch.bool)
    relevant = torch.rand(23, 15, generator=generator) > 0.7
    whole = TopKRanking(5)
    whole.update(scores, candidates, relevant)
    shards = [TopKRanking(5) for _ in range(3)]
    users = torch.arange(23)
    for rank, shard in enumerate(shards):
        mine = users[rank::3]
        shard.update(scores[mine], candidates[mine], relevant[mine])
    for name, metric in shards[0].means.items():
        for other in shards[1:]:
            metric.merge_state(other.means[name])
    merged = shards[0].compute()
    assert merged == pytest.approx(whole.compute())


def test_metric_names_are_valid_mlflow_names():
    from mlflow.utils.validation import _validate_metric_name

    for name in ("precision", "recall", "ndcg", "hit_rate"):
        _validate_metric_name(metric_name(name, 10))
    assert metric_name("ndcg", 10) == "test/ndcg_at_10"


def test_user_items_masks_match_a_dense_matrix():
    generator = torch.Generator().manual_seed(1)
    user = torch.randint(0, 9, (60,), generator=generator)
    movie = torch.randint(0, 12, (60,), generator=generator)
    items = UserItems.from_pairs(user, movie, n_users=10, n_movies=12)
    dense = torch.zeros(10, 12, dtype=torch.bool)
    dense[user, movie] = True
    query = torch.tensor([3, 9, 0, 3])  # 9 has no movies; 3 twice
    assert torch.equal(items.mask(query), dense[query])
    assert items.count(query).tolist() == [int((user == u).sum()) for u in query]
    assert items.users_with_items().tolist() == sorted(set(user.tolist()))
    assert sorted(items.of(3).tolist()) == sorted(movie[user == 3].tolist())


def test_popularity_ranks_by_count_then_damped_mean():
    # movie 0: 3 ratings of 2; movie 1: 3 ratings of 4; movie 2: 1 rating of 5; movie 3: none
    movie = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    rating = torch.tensor([2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 5.0])
    popularity = Popularity.from_ratings(movie, rating, n_movies=4, damping=1.0)
    mean = rating.double().mean().item()  # 23 / 7
    assert popularity.count.tolist() == [3, 3, 1, 0]
    assert popularity.rating.tolist() == pytest.approx(
        [(6 + mean) / 4, (12 + mean) / 4, (5 + mean) / 2, mean]
    )
    order = torch.argsort(popularity.score, descending=True).tolist()
    assert order == [1, 0, 2, 3]  # count ties (0, 1) broken by the damped mean
    scores = popularity.scorer()(torch.tensor([5, 6]))
    assert scores.shape == (2, 4) and torch.equal(scores[0], scores[1])


def test_user_chunks_respect_the_pair_budget():
    users = torch.arange(10)
    chunks = list(user_chunks(users, n_movies=4, pair_budget=12))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert torch.equal(torch.cat(chunks), users)
    assert [len(c) for c in user_chunks(users, n_movies=100, pair_budget=12)] == [1] * 10


@pytest.mark.parametrize(
    ("stage", "excluded_parts"), [("test", ("train", "val")), ("val", ("train",))]
)
def test_protocol_excludes_what_was_seen_and_keeps_relevant_rows(
    tiny_mirror, tmp_path, stage, excluded_parts
):
    datamodule = MovieLensDataModule(
        "ml_latest_small",
        str(tmp_path / "cache"),
        mirror=str(tiny_mirror),
        verify_counts=False,
        split=RandomSplit(val_fraction=0.2, test_fraction=0.2, seed=3),
    )
    datamodule.prepare_data()
    datamodule.setup()
    protocol = RankingProtocol.from_split(datamodule.split_data, relevant_rating=4.0, stage=stage)
    ratings = datamodule.data.ratings
    for part in ("train", "val", "test"):
        rows = getattr(datamodule.indices, part)
        mask = protocol.exclude.mask(torch.from_numpy(ratings["user"].to_numpy()[rows]))
        hit = mask[torch.arange(len(rows)), torch.from_numpy(ratings["movie"].to_numpy()[rows])]
        assert bool(hit.all()) if part in excluded_parts else not bool(hit.any()), part
    test = ratings.iloc[getattr(datamodule.indices, stage)]
    liked = test[test["rating"] >= 4.0]
    assert protocol.users.tolist() == sorted(set(liked["user"]))
    assert protocol.relevant.count(protocol.users).sum() == len(liked)
    assert torch.equal(torch.cat([protocol.shard(r, 2) for r in (0, 1)]).sort().values,
                       protocol.users)  # fmt: skip


@pytest.mark.integration
def test_popularity_on_ml100k_matches_torchmetrics(real_mirror, real_cache):
    """Real data: the vectorised metrics of the popularity baseline on ml-100k u1 equal
    torchmetrics' per-user retrieval metrics over the same candidates."""
    datamodule = MovieLensDataModule(
        "ml_100k", str(real_cache), mirror=str(real_mirror), split=PredefinedSplit(fold=1)
    )
    datamodule.prepare_data()
    datamodule.setup()
    ml100k = datamodule.data
    protocol = RankingProtocol.from_split(datamodule.split_data)
    _, train_movie, train_rating = datamodule.rows("train")
    popularity = Popularity.from_ratings(train_movie, train_rating, ml100k.n_movies)
    ours = TopKRanking(10)
    evaluate_ranking(popularity.scorer(), protocol.users, protocol.exclude, protocol.relevant, ours)
    computed = ours.compute()
    users = protocol.users
    candidates = ~protocol.exclude.mask(users)
    relevant = protocol.relevant.mask(users)
    scores = popularity.score.expand(len(users), -1)
    index = users.unsqueeze(1).expand_as(scores)
    reference = RetrievalNormalizedDCG(top_k=10)(
        scores[candidates], relevant[candidates], indexes=index[candidates]
    )
    recall = RetrievalRecall(top_k=10)(
        scores[candidates], relevant[candidates], indexes=index[candidates]
    )
    assert len(users) == 456  # u1.test users with a rating ≥ 4
    assert computed["ndcg"] == pytest.approx(float(reference), abs=1e-5)
    assert computed["recall"] == pytest.approx(float(recall), abs=1e-5)
    assert 0.1 < computed["ndcg"] < 0.5  # most-popular is a strong baseline on ml-100k
    assert np.isfinite(list(computed.values())).all()


def test_popular_baseline_task_writes_what_the_benchmark_reads(tmp_path):
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    try:
        from benchmark import COLUMNS
    finally:
        sys.path.remove(str(PROJECT_ROOT / "scripts"))
    cfg = compose_train(tmp_path, TINY_DATA, config_name="popular_baseline")
    returned = evaluate_popularity(cfg)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(COLUMNS) <= set(written)
    assert written["test/ndcg_at_10"] == pytest.approx(returned["test/ndcg_at_10"])
    # its rating is each movie's damped mean over the training ratings
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    _, movie, rating = datamodule.rows("train")
    mean, damping = rating.double().mean(), cfg.popularity.damping
    sums = torch.zeros(datamodule.data.n_movies, dtype=torch.float64).index_add_(
        0, movie, rating.double()
    )
    counts = torch.bincount(movie, minlength=datamodule.data.n_movies)
    damped = (sums + damping * mean) / (counts + damping)
    _, test_movie, test_rating = datamodule.rows("test")
    rmse = (damped[test_movie] - test_rating.double()).pow(2).mean().sqrt()
    assert written["test/rmse"] == pytest.approx(float(rmse))
