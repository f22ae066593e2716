"""A bundle's scoring tables (`serving.snapshot` writes them, `serving.tables` and
`serving.numpy_heads` read them) score as the network does for every family, are refused
in one line when damaged, and let a known user be ranked and rated without building the
network or importing torch."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from movierec.cli import run_reporting_user_errors
from movierec.config import build, module_settings
from movierec.data.graph import RATES
from movierec.errors import DataError
from movierec.serving.bundle import CHECKPOINT, GRAPH, TrainedModel, save_bundle
from movierec.serving.loading import load_trained_model
from movierec.serving.manifest import MANIFEST, write_manifest
from movierec.serving.recommender import Recommender
from movierec.serving.snapshot import write_snapshot
from movierec.serving.tables import RATED, SCORING, RatedMovies, ScoringTables
from tests.helpers.configs import TINY_DATA, compose_train

QUIET = ["logger=none", "callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]
VARIANTS = {
    "mf": ["model=mf"],
    "sage": ["model=sage"],
    "sage_mlp_bias": ["model=sage", "model.net.decoder=mlp", "model.net.bias=true"],
    "gcn_bilinear": ["model=gcn", "model.net.decoder=bilinear"],
    "gcn_softmax": ["model=gcn", "model.net.decoder=softmax", "model.net.bias=false"],
    "sage_two_outputs": ["model=sage", "model.net.ranking=dot", "model.net.ranking_dim=4"],
    "gcn_two_outputs": ["model=gcn", "model.net.ranking=dot", "model.net.decoder=mlp"],
    "gcmc": ["model=gcmc"],
    "lightgcn": ["model=lightgcn", "model.net.dim=8"],
}


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    """The tiny data's split, built once for every model of this file."""
    cfg = compose_train(tmp_path_factory.mktemp("data"), [*TINY_DATA, *QUIET])
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def _module(tmp_path: Path, datamodule, overrides: list[str]):
    cfg = compose_train(tmp_path, [*TINY_DATA, *QUIET, *overrides])
    torch.manual_seed(0)
    module = build(module_settings(cfg.model), "model", schema=datamodule.schema.as_dict())
    with torch.no_grad():  # spread every weight, biases included, so scores differ
        for parameter in module.net.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return module.eval(), datamodule


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tables_score_and_rate_as_the_network(tmp_path, tiny_split, variant):
    module, datamodule = _module(tmp_path, tiny_split, VARIANTS[variant])
    graph, net = datamodule.split_data.graph, module.net
    n_users = datamodule.data.n_users
    with torch.no_grad():
        embeddings = net.encode(graph)
        expected = net.score_users(embeddings, torch.arange(n_users)).numpy()
        user, movie, _ = datamodule.split_data.rows("test")
        rating = net.decode(embeddings, user, movie).rating.numpy()
    assert write_snapshot(net, graph, datamodule.schema.rating_scale, tmp_path / SCORING)
    tables = ScoringTables.load(tmp_path / SCORING)  # the head rebuilt from its spec, in NumPy
    assert tables.network == type(net).__name__
    assert tables.predicts_ratings == net.predicts_ratings
    assert tables.rating_scale == tuple(datamodule.schema.rating_scale)
    assert np.array_equal(tables.user, embeddings.user.numpy())
    assert np.array_equal(tables.movie, embeddings.movie.numpy())
    scores = tables.score_users(np.arange(n_users))
    assert scores.dtype == np.float32 and scores.shape == expected.shape
    # the same float32 arithmetic in another order: equal to rounding (relative to the
    # scores' scale, as sums that cancel lose digits), and the same ranking
    atol = 1e-6 * np.abs(expected).max()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=atol)
    assert len(np.unique(scores)) > scores.size // 5, "randomised weights spread the scores"
    top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    assert (np.take_along_axis(expected, top, 1)[:, 0] == expected.max(axis=1)).mean() > 0.9
    pairs = tables.score_pairs(user.numpy(), movie.numpy())
    np.testing.assert_allclose(pairs, rating, rtol=1e-5, atol=1e-6 * np.abs(rating).max())
    assert tables.ranks_by_score == net.ranks_by_score


def test_rated_movies_mask_marks_exactly_each_users_pairs(tmp_path):
    user = np.array([2, 0, 2, 2, 0])
    movie = np.array([1, 3, 0, 1, 0])  # (2, 1) twice: harmless
    rated = RatedMovies.from_pairs(user, movie, n_users=4, n_movies=5)
    rated.save(tmp_path / RATED)
    loaded = RatedMovies.load(tmp_path / RATED)
    expected = np.zeros((4, 5), dtype=bool)
    expected[user, movie] = True
    for table in (rated, loaded):
        assert np.array_equal(table.mask(np.arange(4)), expected)
        assert np.array_equal(table.mask(np.array([3, 2, 2])), expected[[3, 2, 2]])
    assert loaded.movies.dtype == np.int32 and loaded.n_movies == 5


def _bundle(tmp_path: Path, datamodule, overrides: list[str]) -> tuple[Path, object]:
    """A bundle of a (randomised, untrained) model, written as training writes it."""
    module, datamodule = _module(tmp_path, datamodule, overrides)
    hparams = {
        name: OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
        for name, value in module.hparams.items()
    }
    checkpoint = tmp_path / "model.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams}, checkpoint)
    bundle = save_bundle(tmp_path / "bundle", checkpoint, datamodule.split_data, datamodule.data)
    return bundle, datamodule


@pytest.mark.parametrize("variant", ["sage_mlp_bias", "lightgcn", "sage_two_outputs"])
def test_bundle_answers_from_its_tables_as_from_its_network(tmp_path, tiny_split, variant):
    bundle, datamodule = _bundle(tmp_path, tiny_split, VARIANTS[variant])
    assert (bundle / SCORING).is_file() and (bundle / RATED).is_file()
    fast = TrainedModel.load(bundle, build_network=False)
    users = datamodule.data.users["userId"].tolist()
    movies = datamodule.data.movies["movieId"].tolist()[: len(users)]
    top_fast = Recommender(fast).recommend(users, k=5, genre=None)
    assert not top_fast.empty
    predicts = fast.predicts_ratings
    ratings_fast = fast.predict_ratings(users, movies) if predicts else None
    assert "module" not in fast.__dict__, "the network was built for a known user"
    assert "tensors" not in fast.__dict__, "graph.pt was read for a known user"
    saved = torch.load(bundle / GRAPH)["edge_index"]  # (2, E), not the graph's (3, E) buffer
    assert saved.untyped_storage().nbytes() == saved.nbytes
    assert torch.equal(saved, datamodule.graph[RATES].edge_index)

    _without_tables(bundle)  # the network scores
    full = TrainedModel.load(bundle)
    assert full.tables is None
    top_full = Recommender(full).recommend(users, k=5)
    pd.testing.assert_frame_equal(top_fast, top_full, check_exact=False, rtol=1e-5)
    if predicts:
        rated_full = full.predict_ratings(users, movies)
        np.testing.assert_allclose(ratings_fast, rated_full, rtol=1e-5, atol=1e-5)


def _without_tables(bundle: Path) -> None:
    """`bundle` as one of a network without a scoring head is written: no scoring.npz."""
    (bundle / SCORING).unlink()
    write_manifest(bundle)


@pytest.mark.parametrize("name", [SCORING, RATED])
def test_damaged_table_file_is_refused_naming_it(tmp_path, tiny_split, name):
    bundle, _ = _bundle(tmp_path, tiny_split, ["model=mf"])
    data = (bundle / name).read_bytes()
    (bundle / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"bundle file .*{name} is missing or damaged"):
        TrainedModel.load(bundle, build_network=False)


def _garble(path: Path) -> None:
    """Flip one byte in the middle of `path`: the same size, other content."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGES = {
    "rated.npz missing": (RATED, lambda path: path.unlink()),
    "model.ckpt garbled, same size": (CHECKPOINT, _garble),
    "model.ckpt missing": (CHECKPOINT, lambda path: path.unlink()),
    "no manifest": (MANIFEST, lambda path: path.unlink()),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_source_bundle_is_refused_in_one_line_naming_the_file(
    tmp_path, tiny_split, damage, capsys
):
    """Whatever file is damaged, the manifest check names it before anything is read: no
    bundle is read as an older format (one without rated.npz recommended rated movies)."""
    bundle, _ = _bundle(tmp_path, tiny_split, ["model=mf"])
    name, spoil = DAMAGES[damage]
    spoil(bundle / name)
    with pytest.raises(DataError, match=rf"bundle file {bundle / name} is missing or damaged"):
        TrainedModel.load(bundle, build_network=False)
    with pytest.raises(SystemExit) as stopped:  # the recommend command's path to a bundle
        run_reporting_user_errors(lambda: load_trained_model(str(bundle)))
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: bundle file {bundle / name} is missing or damaged")


def test_intact_bundle_lists_every_file_in_its_manifest(tmp_path, tiny_split):
    bundle, _ = _bundle(tmp_path, tiny_split, ["model=mf"])
    listed = json.loads((bundle / MANIFEST).read_text())["files"]
    on_disk = {p.name for p in bundle.iterdir()} - {MANIFEST}
    assert set(listed) == on_disk >= {CHECKPOINT, GRAPH, RATED, SCORING}
    for name, record in listed.items():
        data = (bundle / name).read_bytes()
        assert record == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("variant", ["sage", "sage_two_outputs"])
def test_known_user_is_ranked_and_rated_without_importing_torch(tmp_path, tiny_split, variant):
    bundle, datamodule = _bundle(tmp_path, tiny_split, VARIANTS[variant])
    user = int(datamodule.data.users["userId"].iloc[0])
    movie = int(datamodule.data.movies["movieId"].iloc[0])
    code = (
        "import sys\n"
        "from movierec.serving.recommender import Recommender\n"
        f"rec = Recommender.load({str(bundle)!r})\n"
        f"top = rec.recommend({user}, k=3)\n"
        f"rating = rec.model.predict_ratings([{user}], [{movie}])\n"
        "print(len(top), len(rating), 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3", "1", "False"]
    assert "Warning" not in done.stderr  # torch's sparse notices are not a user's concern


def test_new_user_from_a_bundle_with_tables_matches_the_network(tmp_path, tiny_split):
    """A new user needs the encoder: the network is built then, starting from the tables'
    embeddings, and answers as the same bundle without tables does."""
    bundle, datamodule = _bundle(tmp_path, tiny_split, ["model=mf"])
    movie_ids = datamodule.data.movies["movieId"].tolist()
    ratings = {movie_ids[0]: 5.0, movie_ids[3]: 1.0, movie_ids[7]: 4.0}
    fast = TrainedModel.load(bundle, build_network=False)
    top_fast = Recommender(fast).recommend_new_user(ratings, k=6)
    assert "module" in fast.__dict__  # built for the encoder
    assert len(top_fast) == 6 and not set(ratings) & set(top_fast["movieId"])
    _without_tables(bundle)
    top_full = Recommender(TrainedModel.load(bundle)).recommend_new_user(ratings, k=6)
    pd.testing.assert_frame_equal(top_fast, top_full, check_exact=False, rtol=1e-5)


def test_a_head_numpy_cannot_evaluate_gets_no_tables(tmp_path, tiny_split, monkeypatch):
    """A plug-in's own head class: no scoring.npz, and the bundle is served by its network."""
    from movierec.models.heads import DotHead

    class PluginHead(DotHead):
        pass

    module, datamodule = _module(tmp_path, tiny_split, VARIANTS["lightgcn"])
    net, graph = module.net, datamodule.split_data.graph
    assert write_snapshot(net, graph, (0.5, 5.0), tmp_path / "known.npz")
    monkeypatch.setattr(type(net), "scoring_head", lambda self: PluginHead())
    assert not write_snapshot(net, graph, (0.5, 5.0), tmp_path / SCORING)
    assert not (tmp_path / SCORING).exists()
