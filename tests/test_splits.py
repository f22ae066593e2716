"""Splits are deterministic, disjoint, complete, and follow their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.data.splits import (
    ColdStartSplit,
    KFoldSplit,
    PredefinedSplit,
    RandomSplit,
    TemporalSplit,
)
from movierec.errors import ConfigError
from tests.helpers.graphs import synthetic_ratings


@pytest.fixture(scope="module")
def data():
    return synthetic_ratings(n_users=60, n_movies=80, n_ratings=2000, seed=3)


SPLITS = [
    RandomSplit(val_fraction=0.1, test_fraction=0.2, seed=5),
    KFoldSplit(n_folds=4, fold=3, seed=5),
    TemporalSplit(mode="global"),
    TemporalSplit(mode="per_user", val_fraction=0.1, test_fraction=0.2),
    ColdStartSplit(user_fraction=0.2, seed=5),
]


@pytest.mark.parametrize("split", SPLITS, ids=lambda s: s.describe() + getattr(s, "mode", ""))
def test_split_is_a_deterministic_partition(data, split):
    first = split.assign(data)
    again = split.assign(data)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(first, part), getattr(again, part))
    every = np.concatenate([first.train, first.val, first.test])
    assert len(every) == data.n_ratings and len(np.unique(every)) == data.n_ratings
    assert min(len(first.val), len(first.test)) > 0


def test_random_split_sizes_and_seed(data):
    a = RandomSplit(val_fraction=0.1, test_fraction=0.2, seed=1).assign(data)
    b = RandomSplit(val_fraction=0.1, test_fraction=0.2, seed=2).assign(data)
    assert a.sizes() == {"train": 1400, "val": 200, "test": 400}
    assert not np.array_equal(a.test, b.test)


def test_kfold_test_parts_partition_the_ratings(data):
    tests = [KFoldSplit(n_folds=5, fold=k, seed=0).assign(data).test for k in range(1, 6)]
    merged = np.concatenate(tests)
    assert len(merged) == data.n_ratings and len(np.unique(merged)) == data.n_ratings


def test_temporal_global_holds_out_the_latest(data):
    split = TemporalSplit(mode="global").assign(data)
    time = data.ratings["timestamp"].to_numpy()
    assert time[split.train].max() <= time[split.val].min()
    assert time[split.val].max() <= time[split.test].min()


def test_temporal_per_user_holds_out_each_users_latest(data):
    split = TemporalSplit(mode="per_user", val_fraction=0.1, test_fraction=0.2).assign(data)
    users = data.ratings["user"].to_numpy()
    time = data.ratings["timestamp"].to_numpy()
    for user in np.unique(users[split.test]):
        train_times = time[split.train][users[split.train] == user]
        test_times = time[split.test][users[split.test] == user]
        assert train_times.max() <= test_times.min()


def test_predefined_needs_canonical_folds(data):
    with pytest.raises(ConfigError, match="data=ml_100k"):
        PredefinedSplit(fold=1).assign(data)


def test_cold_start_drop_removes_and_counts():
    data = synthetic_ratings(n_users=60, n_movies=500, n_ratings=600, seed=0)  # sparse: cold movies
    keep = RandomSplit(val_fraction=0.3, test_fraction=0.3, seed=0).assign(data)
    drop = RandomSplit(val_fraction=0.3, test_fraction=0.3, seed=0, cold_start="drop").assign(data)
    train_movies = set(data.ratings["movie"].to_numpy()[keep.train])
    cold = [r for r in keep.test if data.ratings["movie"].iat[r] not in train_movies]
    assert keep.report["test_cold_movie_ratings"] == len(cold) > 0
    assert len(drop.test) == len(keep.test) - drop.report["test_cold_dropped"]
    assert all(data.ratings["movie"].iat[r] in train_movies for r in drop.test)


@pytest.mark.parametrize(
    ("factory", "key"),
    [
        (
            lambda: RandomSplit(val_fraction=0.6, test_fraction=0.5),
            "val_fraction \\+ split.test_fraction",
        ),
        (lambda: RandomSplit(val_fraction=-0.1), "split.val_fraction"),
        (lambda: KFoldSplit(n_folds=5, fold=6), "split.fold=6"),
        (lambda: KFoldSplit(n_folds=1), "split.n_folds"),
        (lambda: KFoldSplit(fold="all"), "split.fold=all"),
        (lambda: TemporalSplit(mode="weekly"), "split.mode='weekly'.*global, per_user"),
        (lambda: RandomSplit(cold_start="maybe"), "split.cold_start='maybe'.*keep, drop"),
    ],
)
def test_invalid_split_settings_name_the_key(factory, key):
    with pytest.raises(ConfigError, match=key):
        factory()


def test_cold_start_split_never_shows_a_held_out_users_ratings_to_training(data):
    split = ColdStartSplit(user_fraction=0.2, val_fraction=0.1, seed=5)
    parts = split.assign(data)
    users = data.ratings["user"].to_numpy()
    held = split.held_out_users(data.n_users)
    assert len(held) == 12 and np.array_equal(held, ColdStartSplit(user_fraction=0.2, seed=5)
                                              .held_out_users(data.n_users))  # fmt: skip
    assert not np.isin(users[parts.train], held).any()
    assert not np.isin(users[parts.val], held).any()
    # every rating of a held-out user is in test, and only theirs
    np.testing.assert_array_equal(parts.test, np.flatnonzero(np.isin(users, held)))
    assert parts.report["test_cold_user_ratings"] == len(parts.test)
    with pytest.raises(ConfigError, match="split.user_fraction"):
        ColdStartSplit(user_fraction=0.0)
