"""The optional neighbor-sampled loader: clear refusals, and subgraph batches train exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch_geometric.typing

from movierec.data.datamodule import MovieLensDataModule
from movierec.data.graph import RATES
from movierec.data.sampling import check_loader
from movierec.errors import ConfigError
from movierec.training.module import RatingPredictor
from tests.helpers.configs import TINY_DATA, compose_train
from tests.helpers.graphs import synthetic_train_graph
from tests.helpers.runs import train_one_split


def _sampler_libraries(monkeypatch, installed: bool) -> None:
    monkeypatch.setattr(torch_geometric.typing, "WITH_PYG_LIB", installed)
    monkeypatch.setattr(torch_geometric.typing, "WITH_TORCH_SPARSE", installed)


def test_neighbor_loader_without_pyg_lib_says_what_to_install(monkeypatch, tmp_path: Path):
    _sampler_libraries(monkeypatch, installed=False)
    with pytest.raises(ConfigError) as caught:  # refused at construction, before any download
        MovieLensDataModule("ml_100k", str(tmp_path), loader="neighbor", batch_size=512)
    message = str(caught.value)
    assert "data.loader=neighbor" in message and "pip install pyg-lib" in message
    assert "data.loader=full" in message
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("loader", "batch_size", "neighbors", "message"),
    [
        ("sampled", 512, [10], "data.loader='sampled' is not valid"),
        ("neighbor", 0, [10], "data.batch_size=0: data.loader=neighbor needs a positive"),
        ("neighbor", 512, [10, 0], "data.num_neighbors=[10, 0]"),
    ],
)
def test_neighbor_loader_settings_are_checked(monkeypatch, loader, batch_size, neighbors, message):
    _sampler_libraries(monkeypatch, installed=True)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_loader(loader, batch_size, neighbors)


def test_transductive_model_is_refused_with_the_neighbor_loader(monkeypatch, tmp_path: Path):
    _sampler_libraries(monkeypatch, installed=True)
    overrides = [*TINY_DATA, "model=gcn", "data.loader=neighbor", "data.batch_size=64"]
    cfg = compose_train(tmp_path, [*overrides, "logger=none", "callbacks.progress_bar=null"])
    with pytest.raises(
        ConfigError, match="GcnNet cannot \\(it is transductive\\); use an inductive model"
    ):
        train_one_split(cfg)


@pytest.mark.parametrize(
    ("net", "reason"),
    [
        ([], "model.net.relations=per_rating splits messages by their rating level"),
        (["model.net.relations=single"], "its ranking output trains on the whole graph"),
    ],
)
def test_sage_settings_that_cannot_train_on_subgraphs_are_refused(
    monkeypatch, tmp_path: Path, net, reason
):
    """The default SAGE (per-level relations, two outputs) is refused in one line before
    the first batch, which would otherwise fail inside the encoder."""
    _sampler_libraries(monkeypatch, installed=True)
    overrides = [*TINY_DATA, "model=sage", *net, "data.loader=neighbor", "data.batch_size=64"]
    cfg = compose_train(tmp_path, [*overrides, "logger=none", "callbacks.progress_bar=null"])
    with pytest.raises(ConfigError, match=f"SageNet cannot \\({reason}"):
        train_one_split(cfg)


def test_subgraph_batch_loss_equals_the_full_graph_loss():
    # A sampled batch is a subgraph in its own node order; with every node kept (permuted)
    # SAGE must give exactly the full-graph loss for the same supervision pairs.
    graph, schema = synthetic_train_graph(30, 45, 600, seed=2)
    net = {"_target_": "movierec.models.sage.SageNet", "hidden": 16, "id_embeddings": True,
           "relations": "single", "ranking": "none"}  # fmt: skip
    torch.manual_seed(0)
    module = RatingPredictor(net, schema.as_dict())
    module.set_graph(graph)
    store = graph[RATES]
    user, movie, rating = (
        store.edge_index[0][:100],
        store.edge_index[1][:100],
        store.edge_label[:100],
    )
    perm_u, perm_m = torch.randperm(30), torch.randperm(45)
    batch = graph.subgraph({"user": perm_u, "movie": perm_m})
    local_u, local_m = torch.argsort(perm_u), torch.argsort(perm_m)  # global → local index
    batch[RATES].edge_label_index = torch.stack([local_u[user], local_m[movie]])
    batch[RATES].edge_label = rating
    assert torch.equal(batch["user"].node_id, perm_u)
    whole = module.supervised_loss(user, movie, rating)
    sampled = module.subgraph_loss(batch)
    torch.testing.assert_close(sampled, whole, rtol=1e-5, atol=1e-6)
