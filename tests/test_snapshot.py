"""A bundle's scoring snapshot (`serving.snapshot`) scores exactly as the network does,
survives a save and load, is refused in one line when damaged, and lets a known user be
ranked without building the network or importing PyG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from movierec.config import build
from movierec.data.graph import RATES
from movierec.errors import DataError
from movierec.serving.bundle import GRAPH, TrainedModel, save_bundle
from movierec.serving.recommender import Recommender
from movierec.serving.snapshot import SCORING, ScoringSnapshot
from tests.helpers.configs import TINY_DATA, compose_train

QUIET = ["logger=none", "callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]
VARIANTS = {
    "mf": ["model=mf"],
    "sage": ["model=sage"],
    "sage_mlp_bias": ["model=sage", "model.net.decoder=mlp", "model.net.bias=true"],
    "gcn_bilinear": ["model=gcn", "model.net.decoder=bilinear"],
    "gcn_softmax": ["model=gcn", "model.net.decoder=softmax", "model.net.bias=false"],
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
    module = build(cfg.model, "model", schema=datamodule.schema.as_dict())
    with torch.no_grad():  # spread every weight, biases included, so scores differ
        for parameter in module.net.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return module.eval(), datamodule


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_snapshot_scores_and_rates_exactly_as_the_network(tmp_path, tiny_split, variant):
    module, datamodule = _module(tmp_path, tiny_split, VARIANTS[variant])
    graph, net = datamodule.split_data.graph, module.net
    with torch.no_grad():
        embeddings = net.encode(graph)
        expected = net.score_users(embeddings, torch.arange(7))
        user, movie, _ = datamodule.split_data.rows("test")
        rating = net.decode(embeddings, user, movie).rating
    snapshot = ScoringSnapshot.of(net, graph, datamodule.schema.rating_scale)
    snapshot.save(tmp_path / SCORING)
    loaded = ScoringSnapshot.load(tmp_path / SCORING)  # the head rebuilt from its spec
    assert loaded.network == type(net).__name__
    assert loaded.predicts_ratings == net.predicts_ratings
    tables = loaded.embeddings
    assert torch.equal(tables.user, embeddings.user) and torch.equal(tables.movie, embeddings.movie)
    with torch.no_grad():
        scores = loaded.head.score_users(tables.user, tables.movie, torch.arange(7))
        head_rating = loaded.head(tables.user, tables.movie, user, movie)[0]
    assert torch.equal(scores, expected)
    assert torch.equal(head_rating, rating)


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


def test_bundle_answers_from_its_snapshot_as_from_its_network(tmp_path, tiny_split):
    bundle, datamodule = _bundle(tmp_path, tiny_split, ["model=sage", "model.net.bias=true"])
    assert (bundle / SCORING).is_file()
    fast = TrainedModel.load(bundle, build_network=False)
    users = datamodule.data.users["userId"].tolist()
    movies = datamodule.data.movies["movieId"].tolist()[: len(users)]
    top_fast = Recommender(fast).recommend(users, k=5, genre=None)
    ratings_fast = fast.predict_ratings(users, movies)
    assert "module" not in fast.__dict__, "the network was built for a known user"
    saved = torch.load(bundle / GRAPH)["edge_index"]  # (2, E), not the graph's (3, E) buffer
    assert saved.untyped_storage().nbytes() == saved.nbytes
    assert torch.equal(saved, datamodule.graph[RATES].edge_index)

    (bundle / SCORING).unlink()  # the same bundle without a snapshot: the network scores
    full = TrainedModel.load(bundle)
    assert full.snapshot is None
    pd.testing.assert_frame_equal(top_fast, Recommender(full).recommend(users, k=5))
    assert (ratings_fast == full.predict_ratings(users, movies)).all()


def test_damaged_snapshot_is_refused_naming_the_file(tmp_path, tiny_split):
    bundle, _ = _bundle(tmp_path, tiny_split, ["model=mf"])
    data = (bundle / SCORING).read_bytes()
    (bundle / SCORING).write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"bundle file .*{SCORING} is missing or damaged"):
        TrainedModel.load(bundle, build_network=False)


def test_known_user_is_ranked_without_importing_pyg(tmp_path, tiny_split):
    bundle, datamodule = _bundle(tmp_path, tiny_split, ["model=sage"])  # dot: CSR pairs
    user = int(datamodule.data.users["userId"].iloc[0])
    code = (
        "import sys\n"
        "from movierec.serving.recommender import Recommender\n"
        f"top = Recommender.load({str(bundle)!r}).recommend({user}, k=3)\n"
        "print(len(top), 'torch_geometric' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3", "False"]
    assert "Warning" not in done.stderr  # torch's sparse notices are not a user's concern
