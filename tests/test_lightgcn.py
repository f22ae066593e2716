"""LightGCN (`model=lightgcn`) and BPR with several negatives: the propagation against a
hand computation, the loss against hand-computed values, training on tiny data (ranking
metrics, no RMSE), and the served model's refusal of rating requests."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from mlflow.exceptions import MlflowException

from movierec.data.graph import RATES, GraphSchema, graph_from_tensors
from movierec.errors import ConfigError
from movierec.models.base import ColdStartUnsupported
from movierec.models.lightgcn import LightGcnNet
from movierec.objective import Objective, bpr
from movierec.serving.recommender import Recommender
from movierec.tasks.recommend import format_recommendations
from movierec.training.module import RatingPredictor
from tests.helpers.configs import FAST, QUIET, TINY_DATA, compose_train
from tests.helpers.graphs import synthetic_train_graph
from tests.helpers.runs import train_one_split
from tests.helpers.stores import tracked_uri

LIGHTGCN = {"_target_": "movierec.models.lightgcn.LightGcnNet", "dim": 8, "num_layers": 2}


def _tiny_graph():
    """2 users, 3 movies: user 0 rated movies 0 and 1, user 1 rated movies 1 and 2."""
    edge_index = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 2]])
    graph = graph_from_tensors(
        {
            "user_node_id": torch.arange(2),
            "movie_node_id": torch.arange(3),
            "movie_x": torch.ones(3, 1),
            "edge_index": edge_index,
            "edge_label": torch.tensor([5.0, 4.0, 3.0, 5.0]),
            "edge_attr": torch.tensor([[1.0], [0.75], [0.5], [1.0]]),
        }
    )
    schema = GraphSchema(2, 3, 0, 1, (1.0, 5.0), (1.0, 2.0, 3.0, 4.0, 5.0), 4.25)
    return graph, schema


@pytest.mark.parametrize("message_passing", ["edges", "sparse"])
def test_propagation_matches_a_hand_computation(message_passing):
    graph, schema = _tiny_graph()
    torch.manual_seed(0)
    net = LightGcnNet(schema, dim=4, num_layers=3, message_passing=message_passing).double()
    e0 = net.lightgcn.embedding.weight.detach()  # (5, 4): users 0-1, then movies 0-2

    # A over users ∪ movies, D^-1/2 A D^-1/2, and the mean of layers 0..3, by hand
    a = torch.zeros(5, 5, dtype=torch.float64)
    for u, m in [(0, 0), (0, 1), (1, 1), (1, 2)]:
        a[u, 2 + m] = a[2 + m, u] = 1.0
    degree = a.sum(1)  # users 2, 2; movies 1, 2, 1
    assert degree.tolist() == [2, 2, 1, 2, 1]
    norm = a / torch.sqrt(degree[:, None] * degree[None, :])
    assert norm[0, 2].item() == pytest.approx(1 / math.sqrt(2))  # user 0 – movie 0
    assert norm[0, 3].item() == pytest.approx(1 / 2)  # user 0 – movie 1
    layers = [e0]
    for _ in range(3):
        layers.append(norm @ layers[-1])
    expected = torch.stack(layers).mean(0)

    z = net.encode(graph)
    torch.testing.assert_close(z.user, expected[:2])
    torch.testing.assert_close(z.movie, expected[2:])
    # scores: one matrix product, the same as decoding every pair
    scores = net.score_users(z, torch.tensor([0, 1]))
    torch.testing.assert_close(scores, expected[:2] @ expected[2:].T)
    pairs = net.decode(z, torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 1, 2] * 2))
    torch.testing.assert_close(pairs.rating.view(2, 3), scores)


def test_sparse_and_edge_paths_give_the_same_embeddings_and_gradients():
    """The sparse path's own backward (A symmetric: the gradient is A @ grad) matches
    PyG's per-edge gather/scatter."""
    graph, schema = synthetic_train_graph(40, 60, 900, seed=1)
    results = []
    for message_passing in ("edges", "sparse"):
        torch.manual_seed(0)
        net = LightGcnNet(schema, dim=8, num_layers=3, message_passing=message_passing).double()
        z = net.encode(graph)
        loss = (z.user[:30] * z.movie[torch.arange(30) * 2]).sum(-1).square().mean()
        results.append((z, torch.autograd.grad(loss, net.lightgcn.embedding.weight)[0]))
    (z_e, grad_e), (z_s, grad_s) = results
    torch.testing.assert_close(z_s.user, z_e.user)
    torch.testing.assert_close(z_s.movie, z_e.movie)
    torch.testing.assert_close(grad_s, grad_e)


def test_the_normalised_adjacency_is_built_once(monkeypatch):
    graph, schema = _tiny_graph()
    import movierec.models.lightgcn as lightgcn

    calls = []
    real = lightgcn.csr_matrix
    monkeypatch.setattr(lightgcn, "csr_matrix", lambda *a, **k: calls.append(1) or real(*a, **k))
    net = LightGcnNet(schema, dim=4, message_passing="sparse")
    net.encode(graph)
    net.encode(graph)
    assert len(calls) == 2  # its two blocks, on the first encoding only
    assert net.message_graph.cache._value[0].layout == torch.sparse_csr


def test_lightgcn_declares_itself_ranking_only():
    _, schema = _tiny_graph()
    net = LightGcnNet(schema)
    assert not net.predicts_ratings and not net.inductive
    assert net.supported_losses == ("bpr",) and not net.accepts_new_users
    with pytest.raises(ConfigError, match="model.objective.loss='mse' does not suit LightGcnNet"):
        RatingPredictor(LIGHTGCN, schema.as_dict(), objective={"loss": "mse"})
    with pytest.raises(ConfigError, match="model.net.reg=-1"):
        LightGcnNet(schema, reg=-1)


def test_bpr_with_several_negatives_matches_a_hand_computed_value():
    positive = torch.tensor([2.0, 0.5])
    negative = torch.tensor([[1.0, 3.0], [0.5, -1.0]])
    # −log σ(x) = log(1 + e^−x) for the margins 1, −1, 0, 1.5, averaged over the 4 pairs
    expected = sum(math.log1p(math.exp(-x)) for x in (1.0, -1.0, 0.0, 1.5)) / 4
    assert bpr(positive, negative).item() == pytest.approx(expected, rel=1e-6)
    # a pair that does not count adds 0 but stays in the denominator
    kept = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0))) / 4
    assert bpr(positive, negative, torch.tensor([True, False])).item() == pytest.approx(kept)


def test_loss_bpr_is_the_mean_over_positives_and_their_negatives():
    graph, schema = synthetic_train_graph(30, 50, 600, seed=3)
    torch.manual_seed(0)
    objective = Objective(loss="bpr", bpr_negatives=3, bpr_positive_rating=4.0)
    net = LightGcnNet(schema, dim=8, num_layers=2)
    z = net.encode(graph)
    user = torch.tensor([0, 1, 2, 3])
    movie = torch.tensor([5, 6, 7, 8])
    rating = torch.tensor([4.5, 2.0, 4.0, 1.0])

    torch.manual_seed(1)
    loss = objective.batch_loss(net, z, user, movie, rating, schema.n_movies)

    keep = rating >= 4.0  # loss=bpr trains on the positives only: users 0 and 2
    torch.manual_seed(1)
    negative = torch.randint(schema.n_movies, (2 * 3,)).view(2, 3)
    u, m = user[keep], movie[keep]
    s_pos = (z.user[u] * z.movie[m]).sum(-1)
    s_neg = (z.user[u].unsqueeze(1) * z.movie[negative]).sum(-1)
    expected = -F.logsigmoid(s_pos.unsqueeze(1) - s_neg).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("chunk", [0, 100])
def test_fused_bpr_gives_the_checkpointed_paths_loss_and_gradients(chunk: int):
    """LightGCN scores by a plain dot product, so its BPR runs fused (`dot_bpr`): the
    same negatives, loss and parameter gradients as the generic chunked decoding."""
    graph, schema = synthetic_train_graph(30, 50, 600, seed=3)
    torch.manual_seed(0)
    net = LightGcnNet(schema, dim=8, num_layers=2).double()
    objective = Objective(loss="bpr", bpr_negatives=3, decode_chunk_size=chunk)
    user, movie = graph[RATES].edge_index
    rating = graph[RATES].edge_label
    results = []
    for fused in (True, False):
        net.scores_by_dot = fused  # the instance attribute shadows the class's
        net.zero_grad()
        torch.manual_seed(7)
        loss = objective.batch_loss(net, net.encode(graph), user, movie, rating, schema.n_movies)
        loss.backward()
        results.append((loss.detach(), net.lightgcn.embedding.weight.grad.clone()))
    (fused_loss, fused_grad), (plain_loss, plain_grad) = results
    torch.testing.assert_close(fused_loss, plain_loss, rtol=0, atol=1e-12)
    torch.testing.assert_close(fused_grad, plain_grad, rtol=0, atol=1e-12)
    assert fused_grad.abs().sum() > 0


def test_one_negative_gives_exactly_the_former_bpr_term():
    """bpr_negatives=1 draws the same movies and gives the same loss, bit for bit, as
    the former one-negative term: mse − λ · mean(log σ(r̂_um − r̂_uj) · positive)."""
    _, schema = synthetic_train_graph(30, 50, 600, seed=3)
    torch.manual_seed(0)
    mf = {"_target_": "movierec.models.mf.BiasedMF", "dim": 8, "init_std": 0.1, "reg": 0.0}
    module = RatingPredictor(
        mf, schema.as_dict(), objective={"bpr_weight": 0.7, "bpr_positive_rating": 3.0}
    )
    z = module.net.encode(None)
    generator = torch.Generator().manual_seed(5)
    user = torch.randint(schema.n_users, (64,), generator=generator)
    movie = torch.randint(schema.n_movies, (64,), generator=generator)
    rating = torch.randint(1, 6, (64,), generator=generator).float()

    torch.manual_seed(2)
    loss = module.objective.batch_loss(module.net, z, user, movie, rating, schema.n_movies)

    torch.manual_seed(2)
    negative = torch.randint(schema.n_movies, movie.shape)  # the former draw
    score = module.net.decode(z, user, movie).rating
    log_odds = F.logsigmoid(score - module.net.decode(z, user, negative).rating)
    former = F.mse_loss(score, rating) - 0.7 * (log_odds * (rating >= 3.0)).mean()
    assert torch.equal(loss, former)


@pytest.mark.parametrize(
    ("net", "settings"),
    [
        (LIGHTGCN, {"loss": "bpr", "bpr_negatives": 3}),
        (LIGHTGCN, {"loss": "bpr", "bpr_negatives": 2, "bpr_positive_rating": 3.0}),
        ({"_target_": "movierec.models.mf.BiasedMF", "dim": 8},
         {"loss": "mse", "bpr_weight": 0.5, "bpr_negatives": 4, "bpr_positive_rating": 3.0}),
    ],
)  # fmt: skip
def test_chunked_decoding_with_several_negatives_gives_the_same_loss_and_gradients(net, settings):
    graph, schema = synthetic_train_graph(40, 60, 900, seed=1)
    store = graph[RATES]
    losses, grads = [], []
    for chunk in (0, 97):
        torch.manual_seed(0)
        module = RatingPredictor(
            net, schema.as_dict(), objective={"decode_chunk_size": chunk, **settings}
        )
        module.set_graph(graph)
        loss = module.supervised_loss(store.edge_index[0], store.edge_index[1], store.edge_label)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, list(module.net.parameters())))
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for chunked, whole in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-6)


def test_bpr_settings_are_checked_with_the_key_named():
    with pytest.raises(ConfigError, match="model.objective.bpr_negatives=0"):
        Objective(loss="bpr", bpr_negatives=0)
    with pytest.raises(ConfigError, match="model.objective.bpr_weight=1.0 adds a BPR term"):
        Objective(loss="bpr", bpr_weight=1.0)


def test_config_composes_with_ndcg_selection(tmp_path: Path):
    cfg = compose_train(tmp_path, ["data=ml_latest_small", "model=lightgcn", "seed=0"])
    assert cfg.model.net._target_ == "movierec.models.lightgcn.LightGcnNet"
    assert cfg.model._target_ == "movierec.training.module.RatingPredictor"
    assert cfg.model.objective.loss == "bpr" and cfg.ranking.validate is True
    assert (cfg.selection.metric, cfg.selection.mode) == ("val/ndcg_at_10", "max")
    assert cfg.callbacks.model_checkpoint.monitor == "val/ndcg_at_10"
    # the command line still wins over the model's defaults
    cfg = compose_train(tmp_path, ["model=lightgcn", "selection.metric=val/recall_at_10"])
    assert cfg.selection.metric == "val/recall_at_10"
    sweep = compose_train(tmp_path, ["hparams_search=lightgcn_optuna", "data=ml_100k"])
    assert sweep.model.net._target_.endswith("LightGcnNet")
    assert "model.objective.bpr_negatives" in sweep.hydra.sweeper.params
    assert sweep.selection.mode == "max"


def test_fast_dev_run(tmp_path: Path):
    cfg = compose_train(
        tmp_path, [*TINY_DATA, "model=lightgcn", "trainer.fast_dev_run=true", *FAST]
    )
    train_one_split(cfg)


def test_trains_logs_ndcg_and_no_rmse_and_refuses_rating_requests(tmp_path: Path):
    uri = tracked_uri(tmp_path)
    cfg = compose_train(
        tmp_path,
        [
            *TINY_DATA,
            "model=lightgcn",
            "model.net.dim=16",
            "model.lr=0.01",
            "data.batch_size=256",
            "trainer.max_epochs=4",
            *QUIET,
            f"logger.mlflow.tracking_uri={uri}",
        ],
    )
    metrics = train_one_split(cfg)

    assert 0 <= metrics["test/ndcg_at_10"] <= 1 and 0 <= metrics["val/ndcg_at_10"] <= 1
    assert not any("rmse" in name or "mae" in name for name in metrics)
    run_id = metrics["mlflow_run_id"]
    logged = mlflow.MlflowClient(uri).get_run(run_id).data.metrics
    assert "val/ndcg_at_10" in logged and "test/ndcg_at_10" in logged
    assert not any("rmse" in name for name in logged)

    # the recommender shows the model's score, never made-up stars
    recommender = Recommender.load(run_id, tracking_uri=uri)
    user_id = int(recommender.model.users["userId"].iloc[0])
    top = recommender.recommend([user_id], k=3)
    assert top["rating"].isna().all() and top["score"].is_monotonic_decreasing
    shown = format_recommendations(top, recommender)
    assert "score" in shown and "predicts no ratings" in shown
    with pytest.raises(ColdStartUnsupported, match="LightGcnNet cannot embed a user"):
        recommender.recommend_new_user({int(recommender.model.movies["movieId"][0]): 5.0})

    # the served model answers top-K requests and refuses rating requests in one line
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    served_top = served.predict(pd.DataFrame({"userId": [user_id], "k": [3]}))
    assert served_top["movieId"].tolist() == top["movieId"].tolist()
    movie_id = int(recommender.model.movies["movieId"].iloc[0])
    with pytest.raises(MlflowException, match="only ranks movies") as refused:
        served.predict(pd.DataFrame({"userId": [user_id], "movieId": [movie_id]}))
    assert "\n" not in refused.value.message and "(userId, k)" in refused.value.message


@pytest.mark.parametrize("validate", [False, True])
def test_validation_encodes_only_when_something_is_validated(monkeypatch, validate):
    """A ranking-only net logs no RMSE: without ranking validation the whole-graph
    encoding at each validation would be wasted (seconds per epoch at 25M ratings)."""
    graph, schema = synthetic_train_graph(20, 30, 200, seed=2)
    module = RatingPredictor(
        {"_target_": "movierec.models.lightgcn.LightGcnNet"},
        schema.as_dict(),
        objective={"loss": "bpr"},
        ranking={"k": [5], "validate": validate},
    )
    module.set_graph(graph)
    calls = []
    real = module.net.encode
    monkeypatch.setattr(module.net, "encode", lambda g: calls.append(1) or real(g))
    module.on_validation_epoch_start()
    assert len(calls) == int(validate)


def test_a_checkpoint_with_the_former_flat_objective_keys_still_loads(tmp_path: Path):
    """Checkpoints written before `model.objective` hold the objective's keys flat beside
    `net`; loading one keeps its BPR objective (not the default rating loss, which
    LightGCN refuses) and its weights."""
    from movierec.training.checkpoints import load_predictor

    _graph, schema = synthetic_train_graph(20, 30, 200, seed=2)
    objective = {"loss": "bpr", "bpr_negatives": 3, "bpr_exclude_rated": True}
    module = RatingPredictor(LIGHTGCN, schema.as_dict(), objective=objective)
    hparams = dict(module.hparams)
    hparams.update(hparams.pop("objective"))  # the former layout
    path = tmp_path / "old.ckpt"
    saved = {"state_dict": module.state_dict(), "hyper_parameters": hparams}
    torch.save({**saved, "pytorch-lightning_version": pl.__version__}, path)
    loaded = load_predictor(path)
    assert loaded.objective == Objective(**{**Objective().__dict__, **objective})
    for name, tensor in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
