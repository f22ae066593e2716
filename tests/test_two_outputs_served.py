"""A two-output SAGE run end to end: trained with both losses, logged to MLflow, then
recommended (ranked by its score, rated in stars), folded in for a new user and served."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from movierec.serving.recommender import Recommender
from movierec.tasks.recommend import format_recommendations
from tests.helpers.configs import QUIET, TINY_DATA, compose_train
from tests.helpers.runs import train_one_split
from tests.helpers.stores import tracked_uri


def test_two_output_sage_is_ranked_by_its_score_rated_in_stars_and_served(tmp_path: Path):
    uri = tracked_uri(tmp_path)
    overrides = ["model=sage", *TINY_DATA, "data.batch_size=256"]
    overrides += ["model.net.hidden=8", "model.net.ranking_dim=8", "trainer.max_epochs=2"]
    cfg = compose_train(tmp_path, [*overrides, *QUIET, f"logger.mlflow.tracking_uri={uri}"])
    metrics = train_one_split(cfg)
    assert {"test/rmse", "test/ndcg_at_10", "val/ndcg_at_10"} <= set(metrics)
    logged = mlflow.MlflowClient(uri).get_run(metrics["mlflow_run_id"]).data.metrics
    assert "train/ranking" in logged  # the net's own term, logged by name

    recommender = Recommender.load(metrics["mlflow_run_id"], tracking_uri=uri)
    assert recommender.model.ranks_by_score
    user_id = int(recommender.model.users["userId"].iloc[0])
    top = recommender.recommend([user_id], k=5)
    assert top["score"].is_monotonic_decreasing and top["rating"].notna().all()
    movie_ids = top["movieId"].tolist()
    stars = recommender.model.predict_ratings([user_id] * 5, movie_ids)
    low, high = recommender.model.rating_scale
    np.testing.assert_allclose(np.clip(top["rating"], low, high), stars, rtol=1e-5)
    shown = format_recommendations(top, recommender)
    assert "ranked by score" in shown and "rating" in shown

    given = {int(m): 5.0 for m in recommender.model.movies["movieId"].iloc[:3]}
    new = recommender.recommend_new_user(given, k=4)
    assert len(new) == 4 and not set(given) & set(new["movieId"]) and "score" in new

    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model(f"runs:/{metrics['mlflow_run_id']}/model")
    served_top = served.predict(pd.DataFrame({"userId": [user_id], "k": [5]}))
    assert served_top["movieId"].tolist() == movie_ids
    rated = served.predict(pd.DataFrame({"userId": [user_id] * 2, "movieId": movie_ids[:2]}))
    np.testing.assert_allclose(rated.to_numpy(), stars[:2], rtol=1e-5)
