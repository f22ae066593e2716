"""A model is a plug-in: a network defined here, in the test file only, and named by
`_target_`, trains, is ranked, recommends, is served as an MLflow model and embeds a new
user (because it declares it can), with no change anywhere else in the project."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from omegaconf import open_dict
from torch import nn
from torch_geometric.data import HeteroData

from movierec.data.graph import GraphSchema
from movierec.models.base import NodeEmbeddings, RatingNet, RatingScores
from movierec.serving.recommender import Recommender
from tests.helpers.configs import TINY_DATA, compose_train
from tests.helpers.runs import train_one_split
from tests.helpers.stores import tracked_uri


class TinyDotNet(RatingNet):
    """r̂(u, m) = μ + p_u · q_m over learned ID embeddings (no graph); new users are the
    star-weighted mean of the factors of the movies they rated."""

    supported_losses = ("mse",)

    def __init__(self, schema: GraphSchema, dim: int = 4) -> None:
        super().__init__(schema)
        self.user = nn.Embedding(schema.n_users, dim)
        self.movie = nn.Embedding(schema.n_movies, dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.movie.weight, std=0.1)
        self.mean = float(schema.mean_rating)
        self.scored_blocks = 0

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        return NodeEmbeddings(self.user.weight, self.movie.weight)

    def decode(self, embeddings, user, movie) -> RatingScores:
        return RatingScores(self.mean + (embeddings.user[user] * embeddings.movie[movie]).sum(-1))

    def score_users(self, embeddings, users) -> torch.Tensor:
        self.scored_blocks += 1  # the ranking and the recommender call this, not decode
        return self.mean + embeddings.user[users] @ embeddings.movie.T

    def new_user_refusal(self) -> None:
        return None

    def embed_new_user(self, graph, embeddings, movies, stars):
        weights = (stars - self.mean).unsqueeze(1)
        row = (weights * embeddings.movie[movies]).mean(0, keepdim=True)
        user = torch.cat([embeddings.user, row])
        return NodeEmbeddings(user, embeddings.movie), len(user) - 1


def test_a_model_defined_outside_the_project_runs_end_to_end(tmp_path: Path):
    uri = tracked_uri(tmp_path)
    cfg = compose_train(
        tmp_path,
        [
            *TINY_DATA,
            "model=mf",
            "trainer.max_epochs=3",
            "ranking.k=5",
            "callbacks.progress_bar=null",
            "trainer.enable_progress_bar=false",
            f"logger.mlflow.tracking_uri={uri}",
        ],
    )
    with open_dict(cfg):
        cfg.model.net = {"_target_": f"{__name__}.TinyDotNet", "dim": 4}

    metrics = train_one_split(cfg)

    # trained and ranked
    assert 0 < metrics["test/rmse"] < 5
    assert 0 <= metrics["test/ndcg_at_5"] <= 1
    run_id = metrics["mlflow_run_id"]
    # recommends for a known user, in original ids, from the logged bundle
    recommender = Recommender.load(run_id, tracking_uri=uri)
    assert type(recommender.model.module.net).__name__ == "TinyDotNet"
    user_id = int(recommender.model.users["userId"].iloc[0])
    top = recommender.recommend([user_id], k=3)
    assert top["userId"].tolist() == [user_id] * 3 and top["rank"].tolist() == [1, 2, 3]
    assert recommender.model.module.net.scored_blocks >= 1
    # embeds a new user, because it declares so
    movie_ids = recommender.model.movies["movieId"].tolist()[:3]
    new = recommender.recommend_new_user(dict.fromkeys(movie_ids, 5.0), k=4, user_id=-7)
    assert len(new) == 4 and not set(movie_ids) & set(new["movieId"])
    # served as an MLflow model: both request forms
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    ratings = served.predict(pd.DataFrame({"userId": [user_id], "movieId": [movie_ids[0]]}))
    expected = recommender.model.predict_ratings([user_id], [movie_ids[0]])
    assert ratings.to_numpy().ravel().tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    served_top = served.predict(pd.DataFrame({"userId": [user_id], "k": [3]}))
    assert served_top["movieId"].tolist() == top["movieId"].tolist()


class ShrinkingDotNet(TinyDotNet):
    """TinyDotNet bringing its own loss term: w · mean ‖q_m‖² over the batch's movies."""

    def __init__(self, schema: GraphSchema, dim: int = 4, weight: float = 0.0) -> None:
        super().__init__(schema, dim)
        self.weight = weight

    def training_terms(self, graph, embeddings, user, movie) -> dict[str, torch.Tensor]:
        return {"shrink": self.weight * embeddings.movie[movie].pow(2).sum(-1).mean()}


def test_a_model_brings_its_own_loss_term(tmp_path: Path):
    """The term, defined here only, is added to the objective and logged: a heavy one
    shrinks the movie factors, which no other part of the loss asks for."""
    uri = tracked_uri(tmp_path)
    norms = {}
    for weight in (0.0, 100.0):
        cfg = compose_train(
            tmp_path,
            [*TINY_DATA, "model=mf", "trainer.max_epochs=10", "ranking.k=0",
             "callbacks.progress_bar=null", "trainer.enable_progress_bar=false",
             f"logger.mlflow.tracking_uri={uri}"],
        )  # fmt: skip
        with open_dict(cfg):
            cfg.model.net = {"_target_": f"{__name__}.ShrinkingDotNet", "weight": weight}
        run_id = train_one_split(cfg)["mlflow_run_id"]
        history = mlflow.MlflowClient(uri).get_metric_history(run_id, "train/shrink")
        assert len(history) == 10  # one per epoch
        assert (history[-1].value < history[0].value) if weight else history[-1].value == 0
        net = Recommender.load(run_id, tracking_uri=uri).model.module.net
        norms[weight] = net.movie.weight.norm(dim=-1).mean().item()
    assert norms[100.0] < 0.5 * norms[0.0]
