"""MLflow tracking for real: a sqlite store in a temporary folder, a real tracking server
and a real model server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from movierec.config import build
from movierec.errors import ConfigError
from movierec.ranking.metrics import TopKRanking
from movierec.tasks.cross_validation import cross_validate
from movierec.tasks.train import train
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import QUIET, RMSE_SELECTION, TINY_DATA, compose_train
from tests.helpers.runs import all_runs, train_one_split
from tests.helpers.servers import free_port, wait_for
from tests.helpers.stores import tracked_uri


def _tracked(tmp_path: Path, extra: list[str], uri: str | None = None) -> list[str]:
    uri = uri or tracked_uri(tmp_path)
    return [*TINY_DATA, *QUIET, f"logger.mlflow.tracking_uri={uri}", *extra]


def _client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")


def _known_pairs(tmp_path: Path, run_id: str) -> list[list[int]]:
    """Two (userId, movieId) pairs of the run's data, read from its logged ID maps."""
    client = _client(tmp_path)
    folder = client.download_artifacts(run_id, "id_maps", str(tmp_path / "maps"))
    users = pd.read_csv(Path(folder) / "users.csv")["userId"].tolist()
    movies = pd.read_csv(Path(folder) / "movies.csv")["movieId"].tolist()
    return [[users[0], movies[0]], [users[-1], movies[-1]]]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny MF training logged to a sqlite store; shared by the read-only tests."""
    tmp = tmp_path_factory.mktemp("tracked")
    cfg = compose_train(tmp, _tracked(tmp, ["model=mf", "trainer.max_epochs=3", "seed=3"]))
    metrics = train_one_split(cfg)
    return tmp, metrics


def test_run_records_params_tags_metrics_and_artifacts(finished_run):
    tmp, metrics = finished_run
    client = _client(tmp)
    run = client.get_run(metrics["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    params, tags = run.data.params, run.data.tags
    assert params["model.net.dim"] == "64" and params["seed"] == "3"
    # the hyperparameters a researcher compares; the rest is config.yaml, tags, metrics.json
    assert len(params) <= 40 and not [k for k in params if k.startswith(("paths.", "ranking."))]
    assert "model=mf" in tags["overrides"]
    assert tags["model"] == "mf" and tags["dataset"] == "synthetic" and tags["seed"] == "3"
    assert tags["split"] == "random" and len(tags["git.commit"]) == 40
    assert len(tags["data.checksum"]) == 64
    assert {
        "versions.torch",
        "versions.torch_geometric",
        "versions.pytorch_lightning",
        "device",
    } <= set(tags)
    history = client.get_metric_history(run.info.run_id, "val/rmse")
    assert len(history) == 3  # one per epoch
    assert run.data.metrics["test/rmse"] == pytest.approx(metrics["test/rmse"])
    assert run.data.metrics["val/rmse_best"] == pytest.approx(metrics["val/rmse"])
    assert tags["selection.metric"] == "val/rmse" and tags["selection.mode"] == "min"
    assert {"train/loss_epoch", "test/mae", "time/epoch_s"} <= set(run.data.metrics)
    for key in TopKRanking([10, 20], 1).names("test"):  # ranking metrics, both default K
        assert run.data.metrics[key] == pytest.approx(metrics[key])
    assert any(k.startswith("lr-") for k in run.data.metrics)
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "plots", "checkpoints", "id_maps"} <= paths
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/curves.png", "plots/predicted_vs_true.png"}
    local = client.download_artifacts(run.info.run_id, "id_maps/users.csv", str(tmp / "dl"))
    assert list(pd.read_csv(local).columns[:2]) == ["user_index", "userId"]


def test_pyfunc_model_predicts_original_ids(finished_run):
    tmp, metrics = finished_run
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"runs:/{metrics['mlflow_run_id']}/model")
    pairs = _known_pairs(tmp, metrics["mlflow_run_id"])
    predictions = model.predict(pd.DataFrame(pairs, columns=["userId", "movieId"]))
    assert len(predictions) == 2
    assert all(0.5 <= p <= 5.0 for p in predictions)
    with pytest.raises(Exception, match="unknown userId"):
        model.predict(pd.DataFrame({"userId": [999999], "movieId": [pairs[0][1]]}))
    # the top-K form: userId and k (optional exclude_rated, genre, fallback)
    users = [pairs[1][0], pairs[0][0]]
    top = model.predict(pd.DataFrame({"userId": users, "k": [3, 2]}))
    assert list(top.columns) == ["userId", "rank", "movieId", "title", "genres", "rating", "source"]
    assert top["userId"].tolist() == [users[0]] * 3 + [users[1]] * 2  # request order
    assert top["rank"].tolist() == [1, 2, 3, 1, 2]
    for user in users:
        assert not _rated_movies(tmp, user) & set(top.loc[top["userId"] == user, "movieId"])
    mixed = model.predict(
        pd.DataFrame({"userId": [999999, users[0]], "k": [2, 2], "fallback": ["popular", None]})
    )
    assert mixed["source"].tolist() == ["popular", "popular", "model", "model"]
    with pytest.raises(Exception, match="user_id=999999 is not in the training data"):
        model.predict(pd.DataFrame({"userId": [999999], "k": [2]}))
    with pytest.raises(Exception, match="both movieId and k"):
        model.predict(pd.DataFrame({"userId": [users[0]], "movieId": [pairs[0][1]], "k": [2]}))
    with pytest.raises(Exception, match=r"unknown column\(s\) colour"):  # not dropped
        model.predict(pd.DataFrame({"userId": [users[0]], "k": [2], "colour": ["red"]}))


def test_logged_model_records_no_machine_path(finished_run):
    """MLmodel names the model's code and bundle inside the model folder: no path of the
    source tree or of the temporary folder the bundle was written in. The one absolute
    location left is the model's own place in the store (`artifact_path`)."""
    import yaml

    tmp, metrics = finished_run
    client = _client(tmp)
    model_id = client.get_run(metrics["mlflow_run_id"]).data.tags["model_uri"].split("/")[-1]
    location = client.get_logged_model(model_id).artifact_location
    mlmodel = yaml.safe_load((Path(location.removeprefix("file://")) / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["model_code_path"] == "pyfunc_entry.py"
    assert flavor["artifacts"]["bundle"] == {"path": "artifacts/bundle", "uri": "artifacts/bundle"}

    def strings(node) -> list[str]:
        if isinstance(node, dict):
            return [text for value in node.values() for text in strings(value)]
        if isinstance(node, list):
            return [text for value in node for text in strings(value)]
        return [node] if isinstance(node, str) else []

    absolute = [text for text in strings(mlmodel) if text.startswith(("/", "file:"))]
    assert absolute == [location] == [mlmodel["artifact_path"]]


def _rated_movies(tmp_path: Path, user_id: int) -> set[int]:
    """movieIds `user_id` rated in the tiny data (train, val and test), from the data itself."""
    cfg = compose_train(tmp_path, _tracked(tmp_path, ["model=mf"]))
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    data = datamodule.data
    rows = data.ratings[data.ratings["user"] == int(data.user_index([user_id])[0])]
    return set(data.movies["movieId"].to_numpy()[rows["movie"].to_numpy()].tolist())


def test_recommend_cli_by_mlflow_run_id(finished_run):
    """scripts/recommend.py: top-K for a known user (none rated), one-line refusal of an
    unknown user (exit 2), the popularity fallback and JSON output."""
    tmp, metrics = finished_run
    run_id = metrics["mlflow_run_id"]
    user = _known_pairs(tmp, run_id)[0][0]
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}",
        MOVIEREC_DATA_DIR=str(tmp / "data"),
    )
    command = [sys.executable, str(PROJECT_ROOT / "scripts" / "recommend.py"), f"run_id={run_id}"]
    refused = subprocess.run(
        [*command, "user_id=999999"], env=env, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: user_id=999999 is not in the training data of run {run_id} (40 users); "
        "use fallback=popular to recommend the most popular movies instead"
    )
    assert "Traceback" not in refused.stderr
    out = tmp / "recs.json"
    done = subprocess.run(
        [*command, f"user_id=[{user},999999]", "k=5", "fallback=popular", f"json={out}"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = pd.DataFrame(json.loads(out.read_text())["recommendations"])
    mine, fallback = rows[rows["userId"] == user], rows[rows["userId"] == 999999]
    assert len(mine) == 5 and set(mine["source"]) == {"model"}
    assert len(fallback) == 5 and set(fallback["source"]) == {"popular"}
    assert not _rated_movies(tmp, user) & set(mine["movieId"])
    assert mine["rating"].is_monotonic_decreasing
    assert all(title in done.stdout for title in rows["title"])
    assert f"top 5 for userId {user} from run {run_id}" in done.stdout


def test_recommend_by_run_id_keeps_the_bundle_and_then_needs_no_mlflow(finished_run):
    """The first command for a finished run downloads its bundle into the cache; the next
    one answers from the cache alone: no MLflow, no torch, the same recommendations."""
    tmp, metrics = finished_run
    run_id = metrics["mlflow_run_id"]
    user = _known_pairs(tmp, run_id)[0][0]
    cache = tmp / "bundle-cache"
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}",
        MOVIEREC_CACHE_DIR=str(cache),
    )
    code = (
        "import sys\n"
        f"sys.argv = ['recommend.py', 'run_id={run_id}', 'user_id={user}', 'k=4']\n"
        "from movierec.tasks.entry import recommend\n"
        "recommend()\n"
        "print('imported', *(name in sys.modules for name in ('mlflow', 'torch')))\n"
    )

    def command() -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()

    first, second = command(), command()
    assert first[-1].startswith("imported True")  # downloaded through MLflow's client
    assert second[-1] == "imported False False"  # from the cache alone
    assert first[:-1] == second[:-1] and f"top 4 for userId {user}" in first[0]
    (kept,) = cache.glob(f"bundles/*/{run_id}")
    assert (kept / "scoring.npz").is_file() and not list(kept.parent.glob(".*"))
    intact = (kept / "scoring.npz").read_bytes()
    (kept / "scoring.npz").write_bytes(intact[:100])  # damaged in the cache: fetched again
    third = command()
    assert third[-1].startswith("imported True") and third[:-1] == first[:-1]
    assert (kept / "scoring.npz").read_bytes() == intact


def _garble(path: Path) -> None:
    """Flip one byte in the middle of `path`: the same size, other content."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


CACHE_DAMAGES = {
    "rated.npz missing": ("rated.npz", lambda path: path.unlink()),
    "model.ckpt garbled, same size": ("model.ckpt", _garble),
    "model.ckpt missing": ("model.ckpt", lambda path: path.unlink()),
}


@pytest.mark.parametrize("damage", sorted(CACHE_DAMAGES))
def test_damaged_cached_bundle_is_fetched_again(finished_run, damage, monkeypatch):
    """A cache entry that no longer matches its manifest is replaced by a fresh download,
    and answers as the intact one: rated movies stay excluded (a cached bundle without
    rated.npz was read as an older format), no `Directory not empty` when the entry
    lacks model.ckpt."""
    from movierec.serving.loading import load_trained_model
    from movierec.serving.recommender import Recommender

    tmp, metrics = finished_run
    run_id, uri = metrics["mlflow_run_id"], f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"
    cache = tmp / f"cache-{damage.replace(' ', '-')}"
    monkeypatch.setenv("MOVIEREC_CACHE_DIR", str(cache))
    user = _known_pairs(tmp, run_id)[0][0]

    def top() -> pd.DataFrame:
        model, _ = load_trained_model(run_id, uri)
        return Recommender(model).recommend([user], k=30)

    intact = top()
    assert not _rated_movies(tmp, user) & set(intact["movieId"])
    (kept,) = cache.glob(f"bundles/*/{run_id}")
    name, spoil = CACHE_DAMAGES[damage]
    original = (kept / name).read_bytes()
    spoil(kept / name)
    pd.testing.assert_frame_equal(top(), intact)
    assert (kept / name).read_bytes() == original  # fetched again
    assert sorted(p.name for p in kept.parent.iterdir()) == [run_id]  # nothing left aside


def test_served_model_answers_over_http(finished_run):
    tmp, metrics = finished_run
    port = free_port()
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}",
        # the server execs `uvicorn` from PATH: the one installed beside this interpreter
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m",
         f"runs:/{metrics['mlflow_run_id']}/model", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", 90, server)
        body = json.dumps(
            {
                "dataframe_split": {
                    "columns": ["userId", "movieId"],
                    "data": _known_pairs(tmp, metrics["mlflow_run_id"]),
                }
            }
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = json.loads(response.read())["predictions"]
        values = [p["rating"] if isinstance(p, dict) else p for p in predictions]
        assert len(values) == 2 and all(0.5 <= v <= 5.0 for v in values)
        # a top-K request to the same server
        user = _known_pairs(tmp, metrics["mlflow_run_id"])[0][0]
        top = _post(port, {"columns": ["userId", "k"], "data": [[user, 4]]})
        assert [p["rank"] for p in top] == [1, 2, 3, 4]
        assert {p["userId"] for p in top} == {user} and all(p["title"] for p in top)
        assert not _rated_movies(tmp, user) & {p["movieId"] for p in top}
        popular = _post(
            port, {"columns": ["userId", "k", "fallback"], "data": [[999999, 2, "popular"]]}
        )
        assert [p["source"] for p in popular] == ["popular", "popular"]
        # user errors: HTTP 400 with the project's one line, no stack trace, server stays up
        movie = _known_pairs(tmp, metrics["mlflow_run_id"])[0][1]
        bad_requests = [
            ({"columns": ["userId", "k"], "data": [[999999, 2]]},
             "user_id=999999 is not in the training data"),
            ({"columns": ["userId", "movieId"], "data": [[999999, movie]]},
             "unknown userId(s): 999999"),
            ({"columns": ["userId", "k"], "data": [[user + 0.5, 2]]},
             f"column userId must hold integers; row 0 has {user + 0.5}"),
            ({"columns": ["userId", "movieId"], "data": [[user, None]]},
             "column movieId must hold integers; row 0 has no value"),
            ({"columns": ["userId", "k"], "data": [[user, -1]]},
             "column k must be between 1 and 60"),
            ({"columns": ["userId", "k", "genre"], "data": [[user, 2, "Polka"]]},
             "unknown genre(s) Polka"),
            ({"columns": ["userId", "movieId"], "data": [[user, movie]] * 100_001},
             "at most 100,000 are answered at once"),
            # strict values: no coercion of text or booleans, no column ignored
            ({"columns": ["userId", "k", "exclude_rated"], "data": [[user, 2, "false"]]},
             "column exclude_rated must hold true or false (JSON booleans); row 0 has 'false'"),
            ({"columns": ["userId", "k"], "data": [[True, 2]]},
             "column userId must hold integers; row 0 has true"),
            ({"columns": ["userId", "k", "colour"], "data": [[user, 2, "red"]]},
             "unknown column(s) colour; send either rating pairs (columns userId, movieId) or "
             "top-K requests (columns userId, k and optionally exclude_rated, genre, fallback)"),
        ]  # fmt: skip
        bodies = [(_split_body(frame), JSON, message) for frame, message in bad_requests]
        bodies += [
            (f"userId,k,exclude_rated\n{user},2,maybe\n".encode(), "text/csv",
             "column exclude_rated must hold true or false (JSON booleans); row 0 has 'maybe'"),
            (f"userId,k\n{user},2,9\n".encode(), "text/csv",
             "a row has more values than there are column names"),
            (_parquet({"userId": [user], "k": ["2"]}), PARQUET,
             "column k must hold integers; row 0 has '2'"),
        ]  # fmt: skip
        for body, content_type, message in bodies:
            with pytest.raises(urllib.error.HTTPError) as refused:
                _post_body(port, body, content_type)
            answer = json.loads(refused.value.read().decode())
            assert refused.value.code == 400, answer
            assert answer["error_code"] == "INVALID_PARAMETER_VALUE", answer
            assert message in answer["message"], (message, answer)
            assert "Traceback" not in json.dumps(answer) and "stack_trace" not in answer
            assert str(PROJECT_ROOT) not in json.dumps(answer)
        assert len(_post(port, {"columns": ["userId", "k"], "data": [[user, 2]]})) == 2
        # every content type the server accepts answers the same request alike
        from_json = _post(port, {"columns": ["userId", "k", "exclude_rated"],
                                 "data": [[user, 3, False]]})  # fmt: skip
        from_csv = _post_body(
            port, f"userId,k,exclude_rated\n{user},3,false\n".encode(), "text/csv"
        )
        from_parquet = _post_body(
            port, _parquet({"userId": [user], "k": [3], "exclude_rated": [False]}), PARQUET
        )
        assert from_json == from_csv == from_parquet and len(from_json) == 3
    finally:
        server.terminate()
        server.wait(timeout=30)


JSON, PARQUET = "application/json", "application/vnd.apache.parquet"


def _split_body(frame: dict) -> bytes:
    return json.dumps({"dataframe_split": frame}).encode()


def _parquet(columns: dict) -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buffer)
    return buffer.getvalue()


def _post(port: int, frame: dict) -> list:
    return _post_body(port, _split_body(frame), JSON)


def _post_body(port: int, body: bytes, content_type: str) -> list:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


def test_failing_training_leaves_run_failed(tmp_path: Path):
    cfg = compose_train(
        tmp_path,
        _tracked(tmp_path, ["model=mf", "trainer.max_epochs=3",
                            "+callbacks.boom._target_=tests.helpers.failing_callbacks.RaiseAtEpoch"]),
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="bad value"):
        train_one_split(cfg)
    (run,) = _all_runs(tmp_path)
    assert run.info.status == "FAILED"
    assert "bad value discovered at epoch 1" in run.data.tags["error"]


def test_interrupted_training_is_killed_and_resume_continues_the_run(tmp_path: Path, caplog):
    """Ctrl-C (SIGINT, which Python raises as KeyboardInterrupt inside the epoch): the run
    is KILLED, the exit status says SIGINT and the log says how to resume, as for SIGTERM."""
    base = ["model=mf", "callbacks.early_stopping=null"]
    cfg = compose_train(
        tmp_path,
        _tracked(tmp_path, [*base, "trainer.max_epochs=4",
                            "+callbacks.stop._target_=tests.helpers.failing_callbacks.RaiseAtEpoch",
                            "+callbacks.stop.epoch=2", "+callbacks.stop.error=interrupt"]),
    )  # fmt: skip
    with pytest.raises(SystemExit) as stopped:  # Lightning turns Ctrl-C into exit(1)
        train_one_split(cfg)
    assert stopped.value.code == 128 + signal.SIGINT
    (run,) = _all_runs(tmp_path)
    assert run.info.status == "KILLED"
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert f"stopped by SIGINT; resume with ckpt_path={last}" in caplog.text
    resumed_cfg = compose_train(
        tmp_path, _tracked(tmp_path, [*base, "trainer.max_epochs=4", f"ckpt_path={last}"])
    )
    metrics = train_one_split(resumed_cfg)
    assert metrics["mlflow_run_id"] == run.info.run_id  # the same run, continued
    (after,) = _all_runs(tmp_path)
    assert after.info.status == "FINISHED"
    epochs = [m.step for m in _client(tmp_path).get_metric_history(run.info.run_id, "val/rmse")]
    assert len(epochs) == 4  # 2 before the interruption + 2 after


def test_cross_validation_has_parent_and_children(tmp_path: Path):
    cfg = compose_train(
        tmp_path,
        _tracked(tmp_path, ["model=mf", "split=kfold", "split.n_folds=2", "split.fold=all",
                            "trainer.max_epochs=2"]),
    )  # fmt: skip
    cross_validate(cfg)
    runs = _all_runs(tmp_path)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.data.tags["fold"] for c in children) == ["1", "2"]
    child_rmse = [c.data.metrics["test/rmse"] for c in children]
    assert parent.data.metrics["test/rmse"] == pytest.approx(sum(child_rmse) / 2)
    assert "test/rmse_std" in parent.data.metrics
    assert all(r.info.status == "FINISHED" for r in runs)
    # lineage and a compare view of hyperparameters: split sizes are tags, no machine
    # path is a param (they are `path.*` tags), the ratings are the runs' dataset input
    for child in children:
        params, tags = child.data.params, child.data.tags
        assert sum(int(tags[f"split.{part}"]) for part in ("train", "val", "test")) == 1200
        assert not any(k.startswith("split/") for k in child.data.metrics)
        assert not [k for k, v in params.items() if str(tmp_path) in v], params
        assert tags["path.callbacks.model_checkpoint.dirpath"].startswith(str(tmp_path))
        assert "path.paths.output_dir" in tags
        (dataset,) = child.inputs.dataset_inputs
        assert dataset.dataset.name == "synthetic"
        assert dataset.dataset.digest == tags["data.checksum"][:36]
        assert {t.key: t.value for t in dataset.tags}["sha256"] == tags["data.checksum"]


def test_remote_tracking_server(tmp_path: Path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health", 120, server)
        uri = f"http://127.0.0.1:{port}"
        cfg = compose_train(tmp_path, _tracked(tmp_path, ["model=mf", "trainer.max_epochs=2"], uri))
        metrics = train_one_split(cfg)
        run = MlflowClient(uri).get_run(metrics["mlflow_run_id"])
        assert run.info.status == "FINISHED" and "test/rmse" in run.data.metrics
        assert any((tmp_path / "server-artifacts").rglob("config.yaml"))
    finally:
        server.terminate()
        server.wait(timeout=30)


NDCG_SELECTION = ["ranking.k=5", "ranking.validate=true", "selection.metric=val/ndcg_at_5",
                  "selection.mode=max"]  # fmt: skip


def _compare(tmp_path: Path, *extra: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "compare_runs.py"),
         "--experiment", "synthetic",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
         "--plot", str(tmp_path / "cmp.png"), *extra],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return [line for line in result.stdout.splitlines() if "FINISHED" in line]


def test_compare_runs_sorts_by_each_runs_selection(tmp_path: Path):
    metrics = {}
    for model in ("mf", "sage"):
        for name, selection in (("rmse", RMSE_SELECTION), ("ndcg", NDCG_SELECTION)):
            overrides = [f"model={model}", "trainer.max_epochs=2", "seed=1", *selection]
            cfg = compose_train(tmp_path / f"{model}-{name}", _tracked(tmp_path, overrides))
            metrics[model, name] = train_one_split(cfg)
    client = _client(tmp_path)
    run = client.get_run(metrics["mf", "ndcg"]["mlflow_run_id"])  # <metric>_best, tags
    assert run.data.metrics["val/ndcg_at_5_best"] == pytest.approx(
        metrics["mf", "ndcg"]["val/ndcg_at_5"]
    )
    assert run.data.tags["selection.metric"] == "val/ndcg_at_5"
    assert run.data.tags["selection.mode"] == "max"
    assert "val/rmse_best" not in run.data.metrics
    rows = _compare(tmp_path)  # default: by selection, one group per selected metric
    assert len(rows) == 4
    selected = [line.split("FINISHED")[0].split()[-1] for line in rows]
    assert selected == ["max(val/ndcg_at_5)"] * 2 + ["min(val/rmse)"] * 2
    best = [float(line.split("FINISHED")[1].split()[0]) for line in rows]
    assert best[:2] == sorted(best[:2], reverse=True) and best[2:] == sorted(best[2:])
    assert sorted(best[:2]) == pytest.approx(
        sorted(m["val/ndcg_at_5"] for (_, name), m in metrics.items() if name == "ndcg"),
        abs=1e-4,  # the table prints 4 decimals
    )
    test_rmse = [
        float(line.split("FINISHED")[1].split()[1]) for line in _compare(tmp_path, "--sort", "test")
    ]
    assert test_rmse == sorted(test_rmse)
    assert (tmp_path / "cmp.png").stat().st_size > 1000


def _all_runs(tmp_path: Path):
    return all_runs(_client(tmp_path))


def test_sigterm_kills_the_run_and_resume_continues_it(tmp_path: Path):
    """A real `kill` (SIGTERM) of scripts/train.py: run KILLED, resume continues the run."""
    uri = tracked_uri(tmp_path)
    run_dir = tmp_path / "run"
    env = dict(os.environ, MOVIEREC_DATA_DIR=str(tmp_path / "data"))
    command = [
        sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), *TINY_DATA, *QUIET,
        "model=mf", "callbacks.early_stopping=null", f"logger.mlflow.tracking_uri={uri}",
    ]  # fmt: skip
    process = subprocess.Popen(
        [*command, "trainer.max_epochs=100000", f"hydra.run.dir={run_dir}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # a few more epochs
    process.terminate()
    assert process.wait(timeout=60) == 128 + signal.SIGTERM  # said stopped, not finished
    assert "stopped by SIGTERM; resume with ckpt_path=" in process.stderr.read()
    (run,) = _all_runs(tmp_path)
    assert run.info.status == "KILLED"
    import torch

    stopped_at = torch.load(last, weights_only=True)["epoch"]
    resumed = subprocess.run(
        [*command, f"trainer.max_epochs={stopped_at + 3}", f"ckpt_path={last}",
         f"hydra.run.dir={tmp_path / 'resumed'}"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == stopped_at
    assert metrics["epochs_this_run"] == 2  # continued, not restarted from zero
    assert metrics["mlflow_run_id"] == run.info.run_id
    (after,) = _all_runs(tmp_path)
    assert after.info.status == "FINISHED"


def test_ddp_two_cpu_processes_log_one_run_and_match_one_process(tmp_path: Path):
    """trainer=ddp_cpu with 2 gloo processes: one MLflow run, same test RMSE as 1 process."""
    uri = tracked_uri(tmp_path)
    env = dict(os.environ, MOVIEREC_DATA_DIR=str(tmp_path / "data"))
    common = [
        sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), *TINY_DATA, *QUIET,
        "model=mf", "trainer.max_epochs=3", "seed=5", f"logger.mlflow.tracking_uri={uri}",
    ]  # fmt: skip
    results = {}
    for name, extra in (("single", []), ("ddp", ["trainer=ddp_cpu", "trainer.devices=2"])):
        run_dir = tmp_path / name
        done = subprocess.run(
            [*common, *extra, f"hydra.run.dir={run_dir}"],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        results[name] = json.loads((run_dir / "metrics.json").read_text())
    runs = _all_runs(tmp_path)
    assert len(runs) == 2  # one per training, not one per process
    assert all(r.info.status == "FINISHED" for r in runs)
    # full-batch MF: the two ranks' half-batch gradients average to the full-batch one,
    # so only float summation order differs
    assert results["ddp"]["test/rmse"] == pytest.approx(results["single"]["test/rmse"], abs=1e-3)
    # each rank ranks its own shard of the test users; the synced means match one process,
    # and so does coverage, a union of the ranks' top-K lists (per-movie flags, max-reduced)
    for key in TopKRanking([10, 20], 1).names("test"):
        assert results["ddp"][key] == pytest.approx(results["single"][key], abs=1e-3), key
    assert results["ddp"]["test/coverage_at_10"] > 0


def test_compare_table_shows_ranking_metrics_at_each_k():
    from movierec.tracking.comparison import comparison_table

    runs = pd.DataFrame(
        {
            "run_id": ["a" * 32, "b" * 32],
            "metrics.test/rmse": [0.9, 1.0],
            "metrics.test/ndcg_at_20": [0.31, 0.2],
            "metrics.test/ndcg_at_10": [0.25, float("nan")],  # b logged only K = 20
            "metrics.test/map_at_10": [0.12, float("nan")],
            "metrics.test/coverage_at_10": [0.4, float("nan")],
            "metrics.summary/epochs": [3, 4],
        }
    )
    table = comparison_table(runs)
    assert list(table.columns) == [
        "run", "test RMSE", "test NDCG@10", "test MAP@10", "test NDCG@20", "epochs"
    ]  # fmt: skip
    assert table["test NDCG@20"].tolist() == [0.31, 0.2]
    assert table["test MAP@10"].isna().tolist() == [False, True]


def test_a_dataset_insert_lost_to_a_concurrent_run_is_retried():
    """Runs starting together race to insert the same dataset row (MLflow looks it up,
    then inserts): the loser's UNIQUE error is retried once; other errors propagate."""
    from types import SimpleNamespace

    from mlflow.exceptions import MlflowException

    from movierec.tracking.lineage import log_dataset

    calls = []

    def log_inputs(run_id, datasets):
        calls.append((run_id, datasets))
        if len(calls) == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets")

    client = SimpleNamespace(tracking_uri="http://127.0.0.1:5000", log_inputs=log_inputs)
    log_dataset(client, "r1", "dataset")
    assert calls == [("r1", ["dataset"]), ("r1", ["dataset"])]

    def broken(run_id, datasets):
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: no run r1")

    client.log_inputs = broken
    with pytest.raises(MlflowException, match="no run r1"):
        log_dataset(client, "r1", "dataset")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "postgresql+psycopg://x:y@127.0.0.1:{port}/x",
            "logger.mlflow.tracking_uri=postgresql+psycopg://x:***@127.0.0.1:{port}/x: "
            "the database does not answer within 3 s",
        ),
        (
            "http://127.0.0.1:{port}",
            "logger.mlflow.tracking_uri=http://127.0.0.1:{port}: the tracking server does not "
            "answer within 3 s",
        ),
    ],
)
def test_unreachable_tracking_store_is_one_error_before_the_data(tmp_path: Path, uri, message):
    port = free_port()  # nothing listens there
    cfg = compose_train(tmp_path, _tracked(tmp_path, [], uri=uri.format(port=port)))
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        train(cfg)
    assert time.monotonic() - started < 10
    assert str(raised.value).startswith(message.format(port=port))
    assert ":y@" not in str(raised.value)
    assert not (tmp_path / "data").exists()  # refused before any data is read


@pytest.mark.parametrize("setting", ["artifact_location", "tracking_uri"])
def test_unwritable_store_folder_is_one_error_before_the_data(tmp_path: Path, setting: str):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder should be: mkdir below it fails, even for root")
    value = {
        "artifact_location": f"{blocker}/artifacts",
        "tracking_uri": f"sqlite:///{blocker}/mlflow.db",
    }[setting]
    cfg = compose_train(tmp_path, [*TINY_DATA, *QUIET, f"logger.mlflow.{setting}={value}"])
    with pytest.raises(
        ConfigError, match=f"cannot write to {blocker}.*; set logger.mlflow.{setting} to"
    ):
        train(cfg)
    assert not (tmp_path / "data").exists()
    assert all_runs(_client(tmp_path)) == []  # no run was created
