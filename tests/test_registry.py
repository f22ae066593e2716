"""The model registry for real: `register=true` trainings on a sqlite store, the `champion`
alias, and `models:/<name>@champion` recommended from, loaded and served over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from movierec.serving.recommender import Recommender
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import QUIET, TINY_DATA, compose_train
from tests.helpers.runs import train_one_split
from tests.helpers.servers import free_port, wait_for
from tests.helpers.stores import tracked_uri

CHAMPION = "models:/movierec-synthetic-mf@champion"


def test_register_moves_champion_only_to_a_better_model(tmp_path: Path):
    """register=true three times: champion points at the run with the lower best val RMSE,
    the other run is tagged with why it was kept out, the logged model carries its run's
    metrics, and models:/…@champion recommends, loads as an MLflow model and is served."""
    uri = tracked_uri(tmp_path)
    runs = {}
    for name, epochs in (("short", 1), ("long", 25), ("again", 1)):
        cfg = compose_train(
            tmp_path / name,
            [*TINY_DATA, *QUIET, f"logger.mlflow.tracking_uri={uri}", "model=mf",
             f"trainer.max_epochs={epochs}", "register=true", "callbacks.early_stopping=null"],
        )  # fmt: skip
        runs[name] = train_one_split(cfg)
    client = MlflowClient(uri)
    champion = client.get_model_version_by_alias("movierec-synthetic-mf", "champion")
    best = min(runs.values(), key=lambda m: m["val/rmse"])
    assert best is runs["long"] and champion.run_id == runs["long"]["mlflow_run_id"]
    tags = {k: client.get_run(m["mlflow_run_id"]).data.tags for k, m in runs.items()}
    assert tags["short"]["registry.champion"] == "true"  # the first one had no rival
    assert tags["long"]["registry.champion"] == "true"
    assert tags["again"]["registry.champion"] == "false"
    assert "is not beaten by" in tags["again"]["registry.decision"]
    assert champion.tags["selection.metric"] == "val/rmse"
    # the logged model's page shows its run's evaluation and selection metrics
    (output,) = client.get_run(champion.run_id).outputs.model_outputs  # the run's model
    linked = {m.key: m.value for m in client.get_logged_model(output.model_id).metrics}
    logged = client.get_run(champion.run_id).data.metrics
    for key in ("test/rmse", "test/mae", "val/rmse_best"):
        assert linked[key] == logged[key], (key, linked)

    rec = Recommender.load(CHAMPION, tracking_uri=uri)
    user = int(rec.model.users["userId"].iloc[0])
    expected = rec.recommend([user], k=3)["movieId"].tolist()
    assert len(expected) == 3
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model(CHAMPION)
    top = served.predict(pd.DataFrame({"userId": [user], "k": [3]}))
    assert top["movieId"].tolist() == expected
    movie = int(expected[0])
    rating = float(served.predict(pd.DataFrame({"userId": [user], "movieId": [movie]})).iloc[0])
    frames = [
        {"columns": ["userId", "k"], "data": [[user, 3]]},
        {"columns": ["userId", "movieId"], "data": [[user, movie]]},
    ]
    top_k, ratings = _served(uri, frames)
    assert [p["movieId"] for p in top_k] == expected
    (answer,) = ratings
    value = answer["rating"] if isinstance(answer, dict) else answer
    assert value == pytest.approx(rating, abs=1e-5)


def _served(uri: str, frames: list[dict]) -> list[list]:
    """Start `scripts/serve.py model=models:/…@champion` (→ `mlflow models serve`) and
    post each `dataframe_split` frame to it over HTTP; the predictions of each."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "serve.py"), f"model={CHAMPION}",
         f"port={port}", "workers=1", f"tracking_uri={uri}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", 300, server)  # a busy CPU: minutes
        answers = []
        for frame in frames:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=json.dumps({"dataframe_split": frame}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                answers.append(json.loads(response.read())["predictions"])
        return answers
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker
        server.wait(timeout=30)
