"""The ranking baselines and contrastive rankers: EASE's closed form, SimGCL's noise and
InfoNCE term against hand computations, negatives that avoid the user's own movies, and
EASE / XSimGCL trained end to end (EASE served: top-K answered, ratings refused)."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException

from movierec.data.negatives import RatedPairs, draw_unrated
from movierec.errors import ConfigError
from movierec.models.ease import EaseNet, ease_weights
from movierec.models.simgcl import SimGclNet, XSimGclNet, info_nce, perturb
from movierec.objective import Objective
from movierec.serving.recommender import Recommender
from movierec.training.module import RatingPredictor
from tests.helpers.configs import QUIET, TINY_DATA, compose_train
from tests.helpers.graphs import synthetic_train_graph
from tests.helpers.runs import train_one_split
from tests.helpers.stores import tracked_uri


@pytest.mark.parametrize("shape", [(7, 4), (3, 6)])  # the movie side and the Woodbury side
def test_ease_weights_equal_the_closed_form(shape):
    rng = np.random.default_rng(0)
    x = (rng.random(shape) < 0.5).astype(np.float64)
    l2 = 2.5
    p = np.linalg.inv(x.T @ x + l2 * np.eye(shape[1]))
    expected = np.eye(shape[1]) - p / np.diag(p)  # B = I − P diag(1/diag P)
    weights = ease_weights(torch.tensor(x), l2).numpy()
    np.testing.assert_allclose(weights, expected, atol=1e-10)
    assert np.all(np.diag(weights) == 0)


def test_ease_scores_are_the_users_rows_times_b_and_each_epoch_tries_one_lambda():
    graph, schema = synthetic_train_graph(6, 9, 30, seed=1)
    net = EaseNet(schema, lambdas=[1.0, 10.0])
    users, movies = graph["user", "rates", "movie"].edge_index
    x = torch.zeros(6, 9)
    x[users, movies] = 1.0
    for epoch, l2 in [(0, 1.0), (1, 10.0), (5, 10.0)]:
        net.start_epoch(epoch)
        scores = net.score_users(net.encode(graph), torch.arange(6))
        torch.testing.assert_close(scores, x @ ease_weights(x, l2), atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match=r"model.net.lambdas=\[0\]"):
        EaseNet(schema, lambdas=[0])


def test_ease_with_a_positive_rating_builds_x_from_the_liked_movies_only():
    graph, schema = synthetic_train_graph(6, 9, 30, seed=1)
    store = graph["user", "rates", "movie"]
    liked = store.edge_label >= 4.0
    assert 0 < int(liked.sum()) < len(liked)  # the test needs both kinds
    x = torch.zeros(6, 9)
    x[store.edge_index[0, liked], store.edge_index[1, liked]] = 1.0
    net = EaseNet(schema, lambdas=[2.0], positive_rating=4.0)
    scores = net.score_users(net.encode(graph), torch.arange(6))
    torch.testing.assert_close(scores, x @ ease_weights(x, 2.0), atol=1e-5, rtol=1e-5)


def test_simgcl_noise_keeps_each_elements_sign_and_has_norm_eps():
    torch.manual_seed(0)
    x = torch.randn(50, 16, dtype=torch.float64)
    moved = perturb(x, 0.1)
    delta = moved - x
    torch.testing.assert_close(delta.norm(dim=-1), torch.full((50,), 0.1, dtype=torch.float64))
    assert torch.all(torch.sign(delta) == torch.sign(x)) and torch.all(delta != 0)


def test_info_nce_matches_a_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    tau = 0.5
    loss = 0.0
    for i in range(3):
        cos = [float(a[i] @ b[j] / (a[i].norm() * b[j].norm())) for j in range(3)]
        exp = [math.exp(c / tau) for c in cos]
        loss += -math.log(exp[i] / sum(exp))
    assert info_nce(a, b, tau).item() == pytest.approx(loss / 3, rel=1e-6)


def test_negatives_exclude_the_users_rated_movies_where_the_model_says_so(monkeypatch):
    torch.manual_seed(0)
    # user 0 rated movies 0..7 of 10, user 1 rated movie 9 only
    users = torch.tensor([0] * 8 + [1])
    movies = torch.tensor([*range(8), 9])
    rated = RatedPairs(users, movies, n_movies=10)
    batch_users = torch.tensor([0, 1] * 500)
    negative = draw_unrated(batch_users, 4, rated)
    assert negative.shape == (1000, 4)
    assert not rated.contains(batch_users.unsqueeze(1), negative).any()
    assert set(negative[batch_users == 0].flatten().tolist()) == {8, 9}
    # the training step draws them so only when the config says so (lightgcn's does)
    graph, schema = synthetic_train_graph(5, 12, 30, seed=0)
    edge_user, edge_movie = graph["user", "rates", "movie"].edge_index
    seen = []
    real = Objective.pair_loss
    monkeypatch.setattr(Objective, "pair_loss", lambda *a: seen.append(a[7]) or real(*a))
    hits = []
    for exclude in (False, True):
        module = RatingPredictor(
            {"_target_": "movierec.models.lightgcn.LightGcnNet", "dim": 4},
            schema.as_dict(),
            objective={"loss": "bpr", "bpr_negatives": 8, "bpr_exclude_rated": exclude},
        )
        module.set_graph(graph)
        module.net.scores_by_dot = False  # the generic path, where pair_loss sees them
        module.supervised_loss(edge_user, edge_movie, torch.ones(len(edge_user)))
        pairs = RatedPairs(edge_user, edge_movie, 12)
        hits.append(int(pairs.contains(edge_user.unsqueeze(1), seen[-1]).sum()))
    assert hits[0] > 0 and hits[1] == 0


def test_xsimgcl_trains_in_training_mode_on_a_perturbed_view_and_ranks_on_the_clean_one():
    graph, schema = synthetic_train_graph(8, 12, 40, seed=3)
    torch.manual_seed(0)
    net = XSimGclNet(schema, dim=8, num_layers=2, eps=0.2, cl_weight=0.5)
    net.train()
    trained = net.encode(graph)
    assert trained.cl_user is not None
    user, movie = graph["user", "rates", "movie"].edge_index
    terms = net.training_terms(graph, trained, user, movie)
    terms["cl"].backward()
    assert net.lightgcn.embedding.weight.grad.abs().sum() > 0  # the term trains the encoder
    net.eval()
    clean, again = net.encode(graph), net.encode(graph)
    torch.testing.assert_close(clean.user, again.user)  # no noise outside training
    simgcl = SimGclNet(schema, dim=8, num_layers=2)
    assert set(simgcl.training_terms(graph, simgcl.encode(graph), user, movie)) == {"cl"}
    with pytest.raises(ConfigError, match="model.net.cl_layer=3"):
        XSimGclNet(schema, num_layers=2, cl_layer=3)


@pytest.mark.parametrize("model", ["xsimgcl", "simgcl"])
def test_contrastive_models_train_and_log_their_own_term(tmp_path: Path, model: str):
    uri = tracked_uri(tmp_path)
    cfg = compose_train(
        tmp_path,
        [
            *TINY_DATA,
            f"model={model}",
            "model.net.dim=8",
            "trainer.max_epochs=2",
            "data.batch_size=256",
            *QUIET,
            f"logger.mlflow.tracking_uri={uri}",
        ],
    )
    metrics = train_one_split(cfg)
    assert 0 <= metrics["test/ndcg_at_10"] <= 1
    assert not any("rmse" in name for name in metrics)
    logged = mlflow.MlflowClient(uri).get_metric_history(metrics["mlflow_run_id"], "train/cl")
    assert len(logged) == 2 and all(point.value > 0 for point in logged)  # one per epoch


def test_ease_trains_picks_lambda_on_validation_and_its_served_model_refuses_ratings(
    tmp_path: Path,
):
    uri = tracked_uri(tmp_path)
    cfg = compose_train(
        tmp_path,
        [
            *TINY_DATA,
            "model=ease",
            "model.net.lambdas=[1,10,100]",
            "trainer.max_epochs=3",
            *QUIET,
            f"logger.mlflow.tracking_uri={uri}",
        ],
    )
    metrics = train_one_split(cfg)
    assert metrics["epochs"] == 3 and 0 <= metrics["test/ndcg_at_10"] <= 1
    # the per-user test values, for paired tests between models, average to the metric
    per_user = pd.read_csv(tmp_path / "run" / "test_per_user.csv")
    assert per_user["userId"].is_unique and len(per_user) > 10
    assert per_user["ndcg_at_10"].mean() == pytest.approx(metrics["test/ndcg_at_10"], abs=1e-5)
    assert per_user["recall_at_20"].mean() == pytest.approx(metrics["test/recall_at_20"], abs=1e-5)
    run_id = metrics["mlflow_run_id"]
    recommender = Recommender.load(run_id, tracking_uri=uri)
    chosen = float(recommender.model.module.net.l2)
    assert chosen == [1.0, 10.0, 100.0][int(metrics["best_epoch"])]  # the best epoch's λ
    user_id = int(recommender.model.users["userId"].iloc[0])
    top = recommender.recommend([user_id], k=3)
    assert top["rating"].isna().all() and top["score"].is_monotonic_decreasing
    # a new user is the row of movies they rated: answered, none of those movies
    given = recommender.model.movies["movieId"].tolist()[:3]
    new = recommender.recommend_new_user(dict.fromkeys(given, 5.0), k=4)
    assert len(new) == 4 and not set(given) & set(new["movieId"])
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    served_top = served.predict(pd.DataFrame({"userId": [user_id], "k": [3]}))
    assert served_top["movieId"].tolist() == top["movieId"].tolist()
    with pytest.raises(MlflowException, match="only ranks movies"):
        served.predict(pd.DataFrame({"userId": [user_id], "movieId": [given[0]]}))
