"""Graph construction (no leakage), DataModule setup, and DDP-style batch sharding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from movierec.data import batches as batches_module
from movierec.data.batches import RatingBatches
from movierec.data.datamodule import MovieLensDataModule
from movierec.data.graph import RATES, REV_RATES, build_graph, to_networkx
from movierec.data.splits import RandomSplit
from movierec.errors import ConfigError
from tests.helpers.graphs import synthetic_ratings


def test_only_training_ratings_carry_messages():
    data = synthetic_ratings(50, 70, 1500, seed=0)
    split = RandomSplit(seed=0).assign(data)
    graph = build_graph(data, split.train)
    edges = graph[RATES].edge_index
    pairs = set(zip(edges[0].tolist(), edges[1].tolist(), strict=True))
    ratings = data.ratings
    train_pairs = set(
        zip(
            ratings["user"].to_numpy()[split.train],
            ratings["movie"].to_numpy()[split.train],
            strict=True,
        )
    )
    assert pairs == train_pairs
    for part in (split.val, split.test):
        held_out = zip(
            ratings["user"].to_numpy()[part], ratings["movie"].to_numpy()[part], strict=True
        )
        assert not pairs & set(held_out)  # a leak would put a val/test pair into the graph
    reverse = graph[REV_RATES].edge_index
    assert torch.equal(reverse, edges.flip(0))
    assert reverse.is_contiguous() and edges.is_contiguous()
    # one (3, E) buffer: the reverse direction's movies are the forward direction's
    assert reverse[0].data_ptr() == edges[1].data_ptr()
    assert edges.untyped_storage().nbytes() == 3 * edges.shape[1] * edges.element_size()
    np.testing.assert_allclose(
        graph[RATES].edge_attr[:, 0].numpy(), ratings["rating_norm"].to_numpy()[split.train]
    )
    assert graph["movie"].x.shape == (70, 3)
    assert torch.all(graph["user"].x == -1) and graph["user"].x.shape == (50, 20)


def test_networkx_export_has_types_and_ratings():
    data = synthetic_ratings(5, 6, 12, seed=1)
    graph = build_graph(data, np.arange(12), user_feature_kind="none")
    nxg = to_networkx(data, graph)
    assert nxg.number_of_nodes() == 11 and nxg.number_of_edges() == 12
    row = data.ratings.iloc[0]
    edge = nxg.edges[f"u{int(row['user']) + 1}", f"m{int(row['movie']) * 10 + 1}"]
    assert edge["rating"] == row["rating"]
    assert nxg.nodes["u1"]["type"] == "user"
    assert "x" not in graph["user"]


@pytest.mark.parametrize(("shuffle", "batch_size"), [(True, 7), (False, 0), (False, 5)])
def test_batches_shard_disjointly_across_ranks(monkeypatch, shuffle: bool, batch_size: int):
    n, world = 23, 3
    user = torch.arange(n)
    seen = []
    lengths = []
    for rank in range(world):
        monkeypatch.setattr(batches_module, "_rank_and_world", lambda rank=rank: (rank, world))
        loader = RatingBatches(
            user, user, user.float(), batch_size=batch_size, shuffle=shuffle, seed=4
        )
        rows = torch.cat([u for u, _, _ in loader])
        lengths.append(len(list(loader)))
        assert len(loader) == lengths[-1]
        seen.append(rows)
    if shuffle:  # training pads by wrap-around so every rank steps equally often
        assert len(set(lengths)) == 1
        assert set(torch.cat(seen).tolist()) == set(range(n))
        unique_per_rank = [set(r.tolist()) for r in seen]
        assert sum(len(s) for s in unique_per_rank) >= n
    else:  # evaluation: each rating exactly once over all ranks
        merged = torch.cat(seen)
        assert sorted(merged.tolist()) == list(range(n))


def test_training_batches_reshuffle_per_epoch_and_repeat_per_seed():
    x = torch.arange(100)
    epoch = {"value": 0}
    loader = RatingBatches(
        x, x, x.float(), batch_size=30, shuffle=True, seed=1, epoch=lambda: epoch["value"]
    )
    first = torch.cat([batch[0] for batch in loader])
    assert torch.equal(first, torch.cat([batch[0] for batch in loader]))
    assert sorted(first.tolist()) == x.tolist() and not torch.equal(first, x)
    epoch["value"] = 1
    assert not torch.equal(first, torch.cat([batch[0] for batch in loader]))


def test_a_full_batch_keeps_the_split_order():
    """One batch of every row is the same set in any order: no permutation, no copy."""
    x = torch.arange(100)
    (user, _, _), *rest = list(RatingBatches(x, x, x.float(), batch_size=0, shuffle="auto"))
    assert not rest and torch.equal(user, x)
    assert user.data_ptr() == x.data_ptr()  # the split's own tensor
    # shuffle=true permutes even a full batch (how the seed designs' numbers were recorded)
    (user, _, _), *rest = list(RatingBatches(x, x, x.float(), batch_size=0, shuffle=True))
    assert not rest and not torch.equal(user, x) and torch.equal(user.sort().values, x)
    with pytest.raises(ConfigError, match="data.shuffle='sometimes'"):
        MovieLensDataModule("ml_100k", "data", shuffle="sometimes")


def test_datamodule_end_to_end_on_tiny_archive(tiny_mirror: Path, tmp_path: Path):
    dm = MovieLensDataModule(
        "ml_100k",
        str(tmp_path / "cache"),
        mirror=str(tiny_mirror),
        verify_counts=False,
        split=RandomSplit(val_fraction=0.2, test_fraction=0.2, seed=0),
        user_features="side",
        batch_size=2,
    )
    dm.prepare_data()
    dm.setup("fit")
    assert dm.graph["user"].x.shape[0] == 4
    n_train = dm.graph[RATES].edge_index.shape[1]
    assert sum(len(u) for u, _, _ in dm.train_dataloader()) == n_train
    assert 1.0 <= dm.train_mean_rating <= 5.0
    assert dm.rating_scale == (1.0, 5.0)
    # the training rows are the graph's edges (views, no second copy), value for value the
    # rows of the split's training indices
    user, movie, rating = dm.rows("train")
    ratings = dm.data.ratings.iloc[dm.indices.train]
    assert user.tolist() == ratings["user"].tolist()
    assert movie.tolist() == ratings["movie"].tolist()
    assert rating.tolist() == ratings["rating"].tolist()
    assert user.data_ptr() == dm.graph[RATES].edge_index.data_ptr()
    assert dm.split_data.rows("val") is dm.split_data.rows("val")
    # a training frees the ratings table; it reads them through split_data only
    test_rows = [part.tolist() for part in dm.rows("test")]
    n_ratings = dm.data.n_ratings
    dm.release_ratings_table()
    assert dm.data.ratings.columns.empty and dm.data.n_ratings == n_ratings
    assert [part.tolist() for part in dm.split_data.rows("test")] == test_rows
    assert sum(len(u) for u, _, _ in dm.train_dataloader()) == n_train


def test_datamodule_rejects_bad_settings(tmp_path: Path):
    with pytest.raises(ConfigError, match="data.user_features='age'"):
        MovieLensDataModule("ml_100k", str(tmp_path), user_features="age")
    with pytest.raises(ConfigError, match="data.batch_size=-1"):
        MovieLensDataModule("ml_100k", str(tmp_path), batch_size=-1)


def test_side_features_need_a_dataset_that_has_them(tiny_mirror: Path, tmp_path: Path):
    dm = MovieLensDataModule(
        "ml_latest_small",
        str(tmp_path),
        mirror=str(tiny_mirror),
        verify_counts=False,
        user_features="side",
    )
    with pytest.raises(ConfigError, match="ml_100k and ml_1m have them"):
        dm.setup()
