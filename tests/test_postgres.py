"""PostgreSQL for real: an MLflow tracking server backed by PostgreSQL, and Optuna sweep
workers sharing one study on PostgreSQL (one worker SIGKILLed mid-trial).

`.ci/postgres.sh` starts Debian's server and exports MOVIEREC_TEST_POSTGRES (a role that
may create databases); each test gets a database of its own. With CI=true these tests
fail instead of skipping when the server is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import QUIET, TINY_DATA
from tests.helpers.runs import all_runs
from tests.helpers.servers import free_port, wait_for
from tests.helpers.sweeps import STUDY, parallel_worker_params, sweep_command, sweep_env


@pytest.fixture(scope="session")
def postgres_base() -> str:
    url = os.environ.get("MOVIEREC_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but MOVIEREC_TEST_POSTGRES is not set (.ci/postgres.sh)")
        pytest.skip("no PostgreSQL: source .ci/postgres.sh to run these tests")
    return url.rstrip("/")


@pytest.fixture
def postgres_db(postgres_base: str):
    """A fresh database, dropped afterwards; its SQLAlchemy URL."""
    yield from _fresh_db(postgres_base)


@pytest.fixture
def second_db(postgres_base: str):
    """Another fresh database (MLflow and Optuna both keep an `alembic_version` table)."""
    yield from _fresh_db(postgres_base)


def _fresh_db(postgres_base: str):
    import psycopg

    admin = postgres_base.replace("+psycopg", "") + "/postgres"
    name = f"movierec_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_base}/{name}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def tracking_server(postgres_db: str, tmp_path: Path):
    """`mlflow server` on 127.0.0.1 with its runs in PostgreSQL; its http URI."""
    port = free_port()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres_db,
         "--artifacts-destination", str(tmp_path / "server-artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health", 180, server)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_training_logs_to_a_tracking_server_on_postgres(tracking_server: str, tmp_path: Path):
    env = dict(sweep_env(tmp_path), MLFLOW_TRACKING_URI=tracking_server)
    command = [sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), *TINY_DATA, *QUIET,
               "model=mf", "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = (tmp_path / "run" / "mlflow_run_id").read_text().strip()
    client = MlflowClient(tracking_server)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["model"] == "mf" and run.data.params["model.net.dim"] == "64"
    assert 0 < run.data.metrics["test/rmse"] < 5
    assert len(client.get_metric_history(run_id, "val/rmse")) == 2
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "plots", "checkpoints", "id_maps"} <= artifacts
    # the model comes back through the server (proxied artifacts) and answers
    mlflow.set_tracking_uri(tracking_server)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    top = model.predict(pd.DataFrame({"userId": [1], "k": [3], "fallback": ["popular"]}))
    assert top["rank"].tolist() == [1, 2, 3]


def _pg_study(storage: str) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=storage)


def _workers(tmp_path: Path, storage: str, args: tuple[str, ...]) -> list[subprocess.Popen]:
    def start(i: int) -> subprocess.Popen:
        command = sweep_command(tmp_path, *args, f"hydra.sweeper.storage={storage}",
                                 f"hydra.sweep.dir={tmp_path / f'sweep{i}'}", grace=20)  # fmt: skip
        return subprocess.Popen(
            command, env=sweep_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    return [start(i) for i in range(2)]


def _parent_runs(tmp_path: Path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    return all_runs(client, filter_string="tags.`optuna.role` = 'study'")


def test_two_workers_share_one_study_on_postgres(postgres_db: str, tmp_path: Path):
    workers = _workers(tmp_path, postgres_db, ("hydra.sweeper.n_trials=4", "trainer.max_epochs=3"))
    for worker in workers:
        assert worker.wait(timeout=900) == 0, worker.stderr.read()[-3000:]
    study = _pg_study(postgres_db)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) == 4
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert all(any((tmp_path / f"sweep{i}").glob("*/metrics.json")) for i in range(2))
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 4  # distinct draws
    (parent,) = _parent_runs(tmp_path)
    assert parent.info.status == "FINISHED"


def test_parallel_workers_sample_distinct_parameters_on_postgres(postgres_db: str):
    params = parallel_worker_params(postgres_db, n_trials=6)
    assert len(params) == len(set(params)) == 6


def test_study_on_postgres_completes_after_a_worker_is_sigkilled(postgres_db, tmp_path: Path):
    args = ("hydra.sweeper.n_trials=4", "trainer.max_epochs=40", "callbacks.early_stopping=null")
    victim, survivor = _workers(tmp_path, postgres_db, args)
    deadline = time.monotonic() + 400
    killed = False
    while time.monotonic() < deadline and victim.poll() is None:
        # kill the victim once it is training a trial (it reported an intermediate value)
        if (tmp_path / "sweep0").exists() and any((tmp_path / "sweep0").glob("*/checkpoints")):
            victim.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.5)
    assert killed, "the first worker never started a trial"
    victim.wait(timeout=30)
    assert survivor.wait(timeout=1200) == 0, survivor.stderr.read()[-3000:]
    study = _pg_study(postgres_db)
    counted = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 4
    assert any(t.state == TrialState.FAIL for t in study.trials)  # the victim's trial
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))


def _password(url: str) -> str:
    parsed = make_url(url)
    password = parsed.password or ""
    assert len(password) >= 8 and password not in (parsed.username or ""), (
        "MOVIEREC_TEST_POSTGRES's password is short or part of the role's name: a search for "
        "it proves nothing; source .ci/postgres.sh (it sets a generated one)"
    )
    return password


def _rows_holding(url: str, text: str) -> list[str]:
    """`table: row` of every row of the database's tables whose text holds `text`."""
    import psycopg

    found = []
    with psycopg.connect(url.replace("+psycopg", "")) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        for (table,) in tables:
            for (row,) in connection.execute(f'SELECT t::text FROM "{table}" t'):
                if text in row:
                    found.append(f"{table}: {row[:200]}")
    return found


def test_no_password_in_store_logs_or_folders_after_a_sweep(postgres_db, second_db, tmp_path):
    """A sweep with its study and its MLflow runs on PostgreSQL, both URIs given on the
    command line: the role's password is nowhere: not in the MLflow store (params, tags,
    artifacts), the study's database, stdout, stderr, train.log or the run folders."""
    password = _password(postgres_db)
    command = sweep_command(
        tmp_path, "hydra.sweeper.n_trials=2", "trainer.max_epochs=1",
        f"hydra.sweeper.storage={postgres_db}", f"logger.mlflow.tracking_uri={second_db}",
        "logger.mlflow.artifact_location=" + str(tmp_path / "artifacts"),
    )  # fmt: skip
    done = subprocess.run(
        command, env=sweep_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(second_db)
    runs = all_runs(client)
    assert len(runs) == 3  # the study's parent and two trials
    assert any(make_url(second_db).username in str(r.data.tags) for r in runs)  # recorded, hidden
    assert password not in done.stdout + done.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "train.log" for p in written) and any(p.suffix == ".ckpt" for p in written)
    assert any(p.name == "hydra.yaml" for p in written)
    assert any("artifacts" in p.parts and p.name == "config.yaml" for p in written)
    assert [p for p in written if password.encode() in p.read_bytes()] == []
    assert _rows_holding(second_db, password) == [] and _rows_holding(postgres_db, password) == []
