"""Ranking metrics, per-user item sets, the popularity baseline and the test protocol."""

from __future__ import annotations

import copy
import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch_geometric.metrics import (
    LinkPredCoverage,
    LinkPredHitRatio,
    LinkPredMAP,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)
from torchmetrics.retrieval import (
    RetrievalHitRate,
    RetrievalMAP,
    RetrievalMRR,
    RetrievalNormalizedDCG,
    RetrievalPrecision,
    RetrievalRecall,
)

from movierec.config import build
from movierec.data.datamodule import MovieLensDataModule
from movierec.data.splits import PredefinedSplit, RandomSplit
from movierec.errors import ConfigError
from movierec.ranking.metrics import METRICS, TopKRanking, metric_name, parse_ks
from movierec.ranking.popularity import Popularity
from movierec.ranking.protocol import RankingProtocol
from movierec.ranking.scoring import evaluate_ranking, user_chunks
from movierec.ranking.user_items import UserItems
from movierec.tasks.popular_baseline import evaluate_popularity
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import TINY_DATA, compose_train

LOG2_3 = math.log2(3)


def _hand_example():
    """3 users × 6 movies (worked out in `test_metrics_on_a_hand_computed_example`)."""
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
    ranking = TopKRanking([3, 1], n_movies=6)
    ranking.update(scores, candidates, relevant)
    means = ranking.compute()
    # user 0: ranked candidates 1, 2, 3, 4, 5 (movie 0 excluded); relevant {2, 5}
    #   @3: one hit at rank 2: P = 1/3, R = 1/2, HR = 1, NDCG = (1/log2 3) / (1 + 1/log2 3),
    #       AP = (1/2 · P@2) / min(3, 2) = (1/2) / 2, RR = 1/2;  @1: movie 1, no hit
    # user 1: ranked candidates 4, 3, 2, 1, 0; relevant {0} (5 is not a candidate): no hit
    # user 2: nothing relevant: not evaluated (neither in the means nor in coverage)
    assert means["precision_at_3"] == pytest.approx((1 / 3) / 2)
    assert means["recall_at_3"] == pytest.approx((1 / 2) / 2)
    assert means["hit_rate_at_3"] == pytest.approx(1 / 2)
    assert means["ndcg_at_3"] == pytest.approx((1 / LOG2_3) / (1 + 1 / LOG2_3) / 2)
    assert means["map_at_3"] == pytest.approx((1 / 2 / 2) / 2)
    assert means["mrr_at_3"] == pytest.approx((1 / 2) / 2)
    for name in ("precision", "recall", "hit_rate", "ndcg", "map", "mrr"):
        assert means[f"{name}_at_1"] == 0.0, name
    # coverage: top-3 {1, 2, 3} ∪ {4, 3, 2} = 4 of 6 movies; top-1 {1} ∪ {4} = 2 of 6
    # (user 2's top movie 3 would not add to the top-1 union: user 2 is not evaluated)
    assert means["coverage_at_3"] == pytest.approx(4 / 6)
    assert means["coverage_at_1"] == pytest.approx(2 / 6)
    assert ranking.compute("val")["val/map_at_3"] == means["map_at_3"]


def test_ndcg_and_map_cut_the_ideal_list_at_k_and_short_lists_count_k():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    relevant = torch.tensor([[True, False, True, True, True]])
    ranking = TopKRanking(2, n_movies=5)
    ranking.update(scores, torch.ones_like(relevant), relevant)
    values = ranking.compute()
    # one hit at rank 1 (movie 0); IDCG and MAP's normaliser over min(K, |R|) = 2 positions
    assert values["ndcg_at_2"] == pytest.approx(1 / (1 + 1 / LOG2_3))
    assert values["map_at_2"] == pytest.approx(1 / 2)
    assert values["recall_at_2"] == pytest.approx(1 / 4)
    assert values["mrr_at_2"] == 1.0
    # two candidates but K = 5: precision still divides by K, coverage counts only the two
    few = torch.tensor([[True, True, False, False, False]])
    ranking = TopKRanking(5, n_movies=5)
    ranking.update(scores, few, relevant)
    values = ranking.compute()
    assert values["precision_at_5"] == pytest.approx(1 / 5)
    assert values["hit_rate_at_5"] == 1.0
    assert values["map_at_5"] == pytest.approx(1 / 1)  # |R ∩ C| = 1 (movie 0), hit at rank 1
    assert values["coverage_at_5"] == pytest.approx(2 / 5)
    # PyG's coverage would count the padded tail of the short list: all 5 movies
    pyg = LinkPredCoverage(5, 5)
    pyg.update(scores.masked_fill(~few, -1.0).topk(5).indices, relevant.nonzero().t())
    assert float(pyg.compute()) == 1.0


def test_map_normaliser_is_pygs_not_torchmetrics():
    """MAP@K divides by min(K, |R|) (PyG, RecBole); torchmetrics' RetrievalMAP(top_k=K)
    divides by the hits in the top K. One user, |R| = 3, K = 2, a hit at rank 1 only."""
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    relevant = torch.tensor([[True, False, True, True, False]])
    ranking = TopKRanking(2, n_movies=5)
    ranking.update(scores, torch.ones_like(relevant), relevant)
    assert ranking.compute()["map_at_2"] == pytest.approx(1 / 2)
    index = torch.zeros(5, dtype=torch.long)
    torchmetrics_map = RetrievalMAP(top_k=2)(scores[0], relevant[0], indexes=index)
    assert float(torchmetrics_map) == pytest.approx(1.0)


def _reference(scores, candidates, relevant, k: int) -> dict[str, float]:
    """The module docstring's definitions, one user at a time in plain Python."""
    per_user: dict[str, list[float]] = {m: [] for m in METRICS if m != "coverage"}
    shown: set[int] = set()
    for row in range(len(scores)):
        pool = [m for m in range(scores.shape[1]) if candidates[row, m]]
        liked = {m for m in pool if relevant[row, m]}
        if not liked:
            continue
        top = sorted(pool, key=lambda m: -float(scores[row, m]))[:k]
        shown.update(top)
        rel = [m in liked for m in top]
        hits = sum(rel)
        per_user["precision"].append(hits / k)
        per_user["recall"].append(hits / len(liked))
        per_user["hit_rate"].append(float(hits > 0))
        dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(rel) if r)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(liked))))
        per_user["ndcg"].append(dcg / idcg)
        precision_at = [sum(rel[: i + 1]) / (i + 1) for i in range(len(rel))]
        ap = sum(p for p, r in zip(precision_at, rel, strict=True) if r)
        per_user["map"].append(ap / min(k, len(liked)))
        per_user["mrr"].append(next((1 / (i + 1) for i, r in enumerate(rel) if r), 0.0))
    means = {m: sum(v) / len(v) for m, v in per_user.items()}
    return {**means, "coverage": len(shown) / scores.shape[1]}


def _random_case(seed: int, n_users: int = 40, n_movies: int = 60):
    """Random scores (no ties), ~30 % excluded movies, users with nothing relevant and
    users with fewer candidates than the largest K."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(n_users, n_movies, generator=generator) + 0.01  # > 0 for torchmetrics
    candidates = torch.rand(n_users, n_movies, generator=generator) > 0.3
    candidates[:4] = False
    candidates[:4, :3] = True  # 3 candidates, fewer than K = 5 or 10
    relevant = torch.rand(n_users, n_movies, generator=generator) > 0.8
    relevant[4:8] = False  # nothing relevant: not evaluated
    relevant[:4, 0] = True
    return scores, candidates, relevant


KS = (1, 5, 10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocked_metrics_at_several_k_match_the_definitions(seed: int):
    scores, candidates, relevant = _random_case(seed)
    ours = TopKRanking(list(KS), n_movies=scores.shape[1])
    for chunk in torch.arange(len(scores)).split(7):  # in blocks, as training does
        ours.update(scores[chunk], candidates[chunk], relevant[chunk])
    computed = ours.compute()
    for k in KS:
        want = _reference(scores, candidates, relevant & candidates, k)
        for name in METRICS:
            assert computed[f"{name}_at_{k}"] == pytest.approx(want[name], abs=1e-6), (name, k)


@pytest.mark.parametrize("seed", [0, 1])
def test_ranking_from_user_items_pairs_matches_dense_masks(seed: int):
    """evaluate_ranking feeds (row, movie) pairs (`update_pairs`): the same values as
    dense masks, with repeated pairs, relevant movies that are also excluded, users with
    nothing relevant and blocks where some rows drop out; the scorer's blocks (here a
    shared expanded view) are left as they were."""
    generator = torch.Generator().manual_seed(seed)
    n_users, n_movies = 30, 25
    scores = torch.rand(n_users, n_movies, generator=generator)
    seen = torch.randint(0, n_users * n_movies, (500,), generator=generator)  # repeats
    liked = torch.randint(0, n_users * n_movies, (60,), generator=generator)
    exclude = UserItems.from_pairs(seen // n_movies, seen % n_movies, n_users, n_movies)
    relevant = UserItems.from_pairs(liked // n_movies, liked % n_movies, n_users, n_movies)
    shared = scores.clone()
    users = torch.arange(n_users)
    sparse = TopKRanking(list(KS), n_movies)
    evaluate_ranking(
        lambda u: shared[u], users, exclude, relevant, sparse, pair_budget=4 * n_movies
    )
    dense = TopKRanking(list(KS), n_movies)
    dense.update(scores, ~exclude.mask(users), relevant.mask(users))
    assert sparse.compute() == pytest.approx(dense.compute(), abs=1e-6)
    assert torch.equal(shared, scores)
    want = _reference(scores, ~exclude.mask(users), relevant.mask(users) & ~exclude.mask(users), 5)
    assert sparse.compute()["ndcg_at_5"] == pytest.approx(want["ndcg"], abs=1e-6)


@pytest.mark.parametrize("k", KS)
def test_definitions_match_torchmetrics_retrieval(k: int):
    scores, candidates, relevant = _random_case(k)
    relevant &= candidates
    ours = TopKRanking(list(KS), n_movies=scores.shape[1])
    ours.update(scores, candidates, relevant)
    # torchmetrics sees each user's candidates only, grouped by the user index
    user = torch.arange(len(scores)).unsqueeze(1).expand_as(scores)
    preds, target, indexes = scores[candidates], relevant[candidates], user[candidates]
    reference = {
        "precision": RetrievalPrecision(top_k=k, empty_target_action="skip", adaptive_k=False),
        "recall": RetrievalRecall(top_k=k, empty_target_action="skip"),
        "ndcg": RetrievalNormalizedDCG(top_k=k, empty_target_action="skip"),
        "hit_rate": RetrievalHitRate(top_k=k, empty_target_action="skip"),
        "mrr": RetrievalMRR(top_k=k, empty_target_action="skip"),
    }
    computed = ours.compute()
    for name, metric in reference.items():
        want = float(metric(preds, target, indexes=indexes))
        assert computed[f"{name}_at_{k}"] == pytest.approx(want, abs=1e-6), name


@pytest.mark.parametrize("seed", [0, 1])
def test_pyg_link_pred_metrics_on_whole_lists_agree(seed: int):
    """PyG's classes, fed one unblocked top-K list per K (non-candidates ranked last),
    give the blocked top-max(K) values. PyG's coverage counts every index of the lists,
    so it is fed the candidates only (its padded lists count non-candidates)."""
    scores, candidates, relevant = _random_case(seed)
    relevant &= candidates
    ours = TopKRanking(list(KS), n_movies=scores.shape[1])
    for chunk in torch.arange(len(scores)).split(9):
        ours.update(scores[chunk], candidates[chunk], relevant[chunk])
    computed = ours.compute()
    evaluated = relevant.any(dim=1)
    label = relevant.nonzero().t()
    pyg = {"precision": LinkPredPrecision, "recall": LinkPredRecall, "ndcg": LinkPredNDCG,
           "hit_rate": LinkPredHitRatio, "map": LinkPredMAP, "mrr": LinkPredMRR}  # fmt: skip
    for k in KS:
        top = scores.masked_fill(~candidates, -1.0).topk(k, dim=1).indices
        for name, cls in pyg.items():
            metric = cls(k)
            metric.update(top, label)
            assert computed[f"{name}_at_{k}"] == pytest.approx(float(metric.compute())), name
        # PyG's coverage over each evaluated user's candidates in the top K (one per row)
        shown = top[evaluated][candidates[evaluated].gather(1, top[evaluated])]
        coverage = LinkPredCoverage(k, scores.shape[1])
        coverage.update(shown.unsqueeze(1), label)
        assert computed[f"coverage_at_{k}"] == pytest.approx(float(coverage.compute()))
        padded = LinkPredCoverage(k, scores.shape[1])  # the padded lists: never fewer
        padded.update(top[evaluated], label)
        assert computed[f"coverage_at_{k}"] <= float(padded.compute())


def test_sharded_users_merge_to_the_whole():
    """DDP: ranks rank disjoint user shards; states reduced as torchmetrics does across
    ranks (sums, and max for coverage's per-movie flags) equal one process's."""
    scores, candidates, relevant = _random_case(5, n_users=23, n_movies=15)
    whole = TopKRanking([5, 10], 15)
    whole.update(scores, candidates, relevant)
    shards = [TopKRanking([5, 10], 15) for _ in range(3)]
    users = torch.arange(23)
    for rank, shard in enumerate(shards):
        mine = users[rank::3]
        shard.update(scores[mine], candidates[mine], relevant[mine])
    for name, metric in shards[0].metrics.items():
        for other in shards[1:]:
            metric.merge_state(other.metrics[name])
    merged = shards[0].compute()
    assert merged == pytest.approx(whole.compute())


def test_coverage_is_a_union_across_two_shards():
    """Two ranks whose top-2 lists overlap: coverage is |{0, 1} ∪ {1, 2}| / 5, not the
    sum of the ranks' own coverages (2/5 + 2/5)."""
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.0, 0.0], [0.0, 0.9, 0.8, 0.1, 0.0]])
    candidates = torch.ones(2, 5, dtype=torch.bool)
    relevant = torch.tensor(
        [[False, False, True, False, False], [True, False, False, False, False]]
    )
    ranks = [TopKRanking(2, 5), TopKRanking(2, 5)]
    for rank, metric in enumerate(ranks):
        metric.update(
            scores[rank : rank + 1], candidates[rank : rank + 1], relevant[rank : rank + 1]
        )
        # (on a copy: compute() caches its value until the next update or reset)
        assert copy.deepcopy(metric).compute()["coverage_at_2"] == pytest.approx(2 / 5)
    ranks[0].metrics["coverage_at_2"].merge_state(ranks[1].metrics["coverage_at_2"])
    assert ranks[0].compute()["coverage_at_2"] == pytest.approx(3 / 5)


def test_a_mean_over_no_user_is_nan():
    ranking = TopKRanking(3, 6)
    scores, candidates, _ = _hand_example()
    ranking.update(scores, candidates, torch.zeros_like(candidates))
    values = ranking.compute()
    assert math.isnan(values["ndcg_at_3"]) and math.isnan(values["map_at_3"])
    assert values["coverage_at_3"] == 0.0


@pytest.mark.parametrize(
    ("value", "ks"), [(10, (10,)), ([20, 10], (10, 20)), ([5, 5], (5,)), (0, ()), ([], ())]
)
def test_ranking_k_is_an_int_or_a_list(value, ks):
    assert parse_ks(value) == ks
    assert parse_ks(OmegaConf.create({"k": value}).k) == ks


@pytest.mark.parametrize("value", [[10, -1], "a", -1, True, 2.5, [10, "a"], [0]])
def test_invalid_ranking_k_names_the_key(value):
    with pytest.raises(ConfigError, match=r"^ranking\.k=.*expected an integer ≥ 1"):
        parse_ks(value)


def test_metric_names_are_valid_mlflow_names():
    from mlflow.utils.validation import _validate_metric_name

    for name in TopKRanking([10, 20], 5).names("test"):
        _validate_metric_name(name)
    assert metric_name("ndcg", 10) == "test/ndcg_at_10"
    assert set(TopKRanking([10, 20], 5).names("val")) == {
        metric_name(m, k, "val") for m in METRICS for k in (10, 20)
    }


def test_user_items_masks_match_a_dense_matrix():
    generator = torch.Generator().manual_seed(1)
    user = torch.randint(0, 9, (60,), generator=generator)
    movie = torch.randint(0, 12, (60,), generator=generator)
    items = UserItems.from_pairs(user, movie, n_users=10, n_movies=12)
    dense = torch.zeros(10, 12, dtype=torch.bool)
    dense[user, movie] = True
    query = torch.tensor([3, 9, 0, 3])  # 9 has no movies; 3 twice
    assert torch.equal(items.mask(query), dense[query])
    rows, movies = items.pairs(query)
    assert torch.equal(dense[query].nonzero().t(), torch.stack(rows_sorted(rows, movies)))
    assert items.count(query).tolist() == [int((user == u).sum()) for u in query]
    assert items.users_with_items().tolist() == sorted(set(user.tolist()))
    assert sorted(items.of(3).tolist()) == sorted(movie[user == 3].tolist())


def rows_sorted(rows: torch.Tensor, movies: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique (row, movie) pairs in row-major order."""
    key = torch.unique(rows * 1_000 + movies)
    return key // 1_000, key % 1_000


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


def test_a_validation_sample_is_a_fixed_subset_of_the_users():
    users = torch.arange(0, 200, 2)
    protocol = RankingProtocol(UserItems.from_pairs(users, users, 200, 200),
                               UserItems.from_pairs(users, users, 200, 200), users)  # fmt: skip
    sample = protocol.sample(10)
    assert len(sample.users) == 10 and set(sample.users.tolist()) <= set(users.tolist())
    assert torch.equal(sample.users, sample.users.sort().values)
    assert torch.equal(sample.users, protocol.sample(10).users)  # the same every epoch
    assert not torch.equal(sample.users, protocol.sample(10, seed=1).users)
    assert protocol.sample(0) is protocol and protocol.sample(500) is protocol
    with pytest.raises(ConfigError, match="ranking.val_users=-1"):
        from movierec.training.module import RatingPredictor

        RatingPredictor({"_target_": "movierec.models.mf.BiasedMF"}, {},
                        ranking={"val_users": -1})  # fmt: skip


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
    ours = TopKRanking([10, 20], ml100k.n_movies)
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
    assert computed["ndcg_at_10"] == pytest.approx(float(reference), abs=1e-5)
    assert computed["recall_at_10"] == pytest.approx(float(recall), abs=1e-5)
    assert 0.1 < computed["ndcg_at_10"] < 0.5  # most-popular is a strong baseline on ml-100k
    # the same list for everyone: its top 10 and top 20 plus what users had already rated
    assert 10 / ml100k.n_movies <= computed["coverage_at_10"] < computed["coverage_at_20"] < 0.1
    assert np.isfinite(list(computed.values())).all()


def test_popular_baseline_task_writes_what_the_benchmark_reads(tmp_path):
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    try:
        from benchmark import COLUMNS, RANKING, summarize, to_markdown
    finally:
        sys.path.remove(str(PROJECT_ROOT / "scripts"))
    cfg = compose_train(tmp_path, TINY_DATA, config_name="popular_baseline")
    returned = evaluate_popularity(cfg)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(COLUMNS) <= set(written)
    # every ranking metric at every K of ranking.k ([10, 20] by default), as a training logs
    assert {metric_name(m, k) for m in METRICS for k in (10, 20)} <= set(written)
    # the benchmark table shows them: Recall/NDCG/MAP at 10 and 20, coverage at 10
    row = {"dataset": "synthetic", "model": "popular", "seed": 0, **written}
    header, _, line = to_markdown(summarize(pd.DataFrame([row]))).splitlines()
    cells = dict(zip(header.split("|"), line.split("|"), strict=True))
    for metric, title in RANKING:
        assert float(cells[f" {title} "]) == pytest.approx(written[metric], abs=5e-5)
    assert {" MAP@20 ", " coverage@10 "} <= set(cells)
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
