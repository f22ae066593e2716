"""Nothing breaks on concurrent starts, damaged files or killed processes — each case with
real processes: trainings started together on a new store, a truncated checkpoint, a
training killed with SIGKILL, and the serve command run as the README writes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from movierec.data.cache import build_lock, discard, entry_problem, prepare_processed
from movierec.data.sources import DataSettings
from movierec.tracking.lifecycle import end_orphaned_runs, process_tags
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import QUIET, TINY_DATA
from tests.helpers.movielens_layouts import write_ratings_csv
from tests.helpers.runs import all_runs
from tests.helpers.servers import free_port, wait_for
from tests.helpers.stores import seed_mlflow_store

TRAIN = [sys.executable, str(PROJECT_ROOT / "scripts" / "train.py")]


def _env(tmp_path: Path, new_store: bool = False) -> dict[str, str]:
    """Every path under `tmp_path`; the MLflow store is seeded unless `new_store`."""
    if not new_store:
        seed_mlflow_store(tmp_path / "store")
    return dict(
        os.environ,
        MOVIEREC_DATA_DIR=str(tmp_path / "data"),
        MOVIEREC_LOG_DIR=str(tmp_path / "outputs"),
        MOVIEREC_MLRUNS_DIR=str(tmp_path / "mlruns"),
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}",
    )


def _client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")


def _runs(tmp_path: Path):
    return all_runs(_client(tmp_path))


def test_three_trainings_started_together_on_a_new_store_all_finish(tmp_path: Path):
    env = _env(tmp_path, new_store=True)
    # the data cache is built first: this test is about the MLflow store's creation
    prepare = [*TRAIN, *TINY_DATA, *QUIET, "model=mf", "trainer.max_epochs=1", "logger=none"]
    subprocess.run(prepare, env=env, check=True, capture_output=True, timeout=300)

    def start(seed: int) -> subprocess.Popen:
        command = [*TRAIN, *TINY_DATA, *QUIET, "model=mf", "trainer.max_epochs=2",
                   f"seed={seed}", f"hydra.run.dir={tmp_path / f'run{seed}'}"]  # fmt: skip
        return subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    jobs = [start(seed) for seed in range(3)]
    errors = [job.communicate(timeout=600)[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0], [e[-1500:] for e in errors]
    runs = _runs(tmp_path)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_run_folders_of_trainings_started_together_differ(tmp_path: Path, key: str):
    """Folders are named to the second plus the process's own suffix: three trainings
    (or sweeps) started in the same second must not share one."""
    command = [*TRAIN, "--cfg", "all", "--resolve", "--package", key]
    jobs = [
        subprocess.Popen(command, env=_env(tmp_path), stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    folders = [job.communicate(timeout=120)[0].strip().splitlines()[-1] for job in jobs]
    assert all(job.returncode == 0 for job in jobs)
    assert len(set(folders)) == 3, folders


def test_truncated_checkpoint_is_one_error_line(tmp_path: Path):
    env = _env(tmp_path)
    base = [*TRAIN, *TINY_DATA, *QUIET, "model=mf", "logger=none"]
    first = [*base, "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / 'a'}"]
    subprocess.run(first, env=env, check=True, capture_output=True, timeout=300)
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    resumed = subprocess.run(
        [*base, "trainer.max_epochs=3", f"ckpt_path={cut}", f"hydra.run.dir={tmp_path / 'b'}"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 2
    lines = [line for line in resumed.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"ckpt_path={cut}: cannot read the checkpoint" in lines[0]
    assert "damaged or truncated" in lines[0]
    assert "Traceback" not in resumed.stderr


def test_a_sigkilled_training_is_ended_killed_by_the_next_start(tmp_path: Path):
    env = _env(tmp_path)
    slow = subprocess.Popen(
        [*TRAIN, *TINY_DATA, *QUIET, "model=mf", "trainer.max_epochs=100000",
         "callbacks.early_stopping=null", f"hydra.run.dir={tmp_path / 'slow'}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (tmp_path / "slow" / "mlflow_run_id").exists():
            assert slow.poll() is None, "the training ended before it could be killed"
            time.sleep(1)
        run_id = (tmp_path / "slow" / "mlflow_run_id").read_text().strip()
        assert _client(tmp_path).get_run(run_id).info.status == "RUNNING"
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait(timeout=30)
    client = _client(tmp_path)
    assert client.get_run(run_id).info.status == "RUNNING"  # nobody closed it
    # a live run of another process on this host is left alone
    live = client.create_run(client.get_run(run_id).info.experiment_id)
    for key, value in process_tags().items():  # this test's own, live process
        client.set_tag(live.info.run_id, key, value)
    subprocess.run(
        [*TRAIN, *TINY_DATA, *QUIET, "model=mf", "trainer.max_epochs=1",
         f"hydra.run.dir={tmp_path / 'next'}"],
        env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    killed = client.get_run(run_id)
    assert killed.info.status == "KILLED"
    assert f"pid {killed.data.tags['movierec.pid']}" in killed.data.tags["movierec.ended_by"]
    assert client.get_run(live.info.run_id).info.status == "RUNNING"
    assert end_orphaned_runs(client) == []  # nothing left to end


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("served")
    env = _env(tmp_path)
    command = [*TRAIN, *TINY_DATA, *QUIET, "model=mf", "trainer.max_epochs=2",
               f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
    return tmp_path, (tmp_path / "run" / "mlflow_run_id").read_text().strip()


def test_serve_script_answers_without_the_venv_on_path(trained_run):
    """`scripts/serve.py model=<run id>` (what `make serve RUN=<id>` runs) starts MLflow's
    server even when the interpreter's folder is not on PATH (an unactivated venv)."""
    tmp_path, run_id = trained_run
    env = _env(tmp_path)
    env["PATH"] = "/usr/bin:/bin"  # no venv: `uvicorn` is not on PATH
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "serve.py"), f"model={run_id}",
         f"port={port}", "workers=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", 120, server)
        frame = {"columns": ["userId", "k", "fallback"], "data": [[1, 3, "popular"]]}
        body = json.dumps({"dataframe_split": frame})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = json.loads(response.read())["predictions"]
        assert [p["rank"] for p in predictions] == [1, 2, 3]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_serve_script_refuses_a_missing_model_in_one_line(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "serve.py"), "workers=0", "model=abc"],
        env=_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: workers=0: expected ≥ 1"


INSPECT = [sys.executable, str(PROJECT_ROOT / "scripts" / "inspect_data.py")]


@pytest.mark.integration
def test_a_truncated_cache_file_is_detected_and_the_entry_rebuilt(tmp_path, real_mirror):
    env = dict(_env(tmp_path), MOVIELENS_MIRROR=str(real_mirror))
    first = subprocess.run([*INSPECT, "data=ml_100k"], env=env, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    (entry,) = (tmp_path / "data" / "processed").glob("ml_100k-*")
    ratings = entry / "ratings.parquet"
    ratings.write_bytes(ratings.read_bytes()[: ratings.stat().st_size // 2])
    again = subprocess.run([*INSPECT, "data=ml_100k"], env=env, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "ratings.parquet has" in again.stderr and "rebuilding it" in again.stderr
    assert "100,000" in again.stdout and "943" in again.stdout  # the usual counts
    assert again.stdout == first.stdout
    (rebuilt,) = (tmp_path / "data" / "processed").glob("ml_100k-*")
    assert entry_problem(rebuilt) is None


def test_two_processes_building_one_entry_leave_one_intact_entry(tmp_path: Path):
    env = _env(tmp_path)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    jobs = [subprocess.Popen([*INSPECT, *TINY_DATA], env=env, **pipes) for _ in range(2)]
    outputs = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [err[-1500:] for _, err in outputs]
    assert outputs[0][0] == outputs[1][0]
    processed = tmp_path / "data" / "processed"
    entries = list(processed.iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".")  # no staging left
    assert entry_problem(entries[0]) is None
    assert set(json.loads((entries[0] / "meta.json").read_text())["files"]) == {
        "ratings.parquet", "users.parquet", "movies.parquet",
    }  # fmt: skip


def _user_ratings(tmp_path: Path) -> DataSettings:
    ratings = write_ratings_csv(tmp_path / "r.csv")
    return DataSettings("ratings_csv", str(tmp_path / "cache"), ratings_path=str(ratings))


def test_a_staging_folder_left_by_a_killed_build_is_removed_by_the_next(tmp_path: Path):
    settings = _user_ratings(tmp_path)
    entry = prepare_processed(settings)
    discard(entry)
    # what a build killed mid-way leaves: its tempfile.mkdtemp folder, half written
    left = entry.with_name(f".{entry.name}.k1ll3d_")
    left.mkdir()
    (left / "ratings.parquet").write_bytes(b"half a file")
    assert prepare_processed(settings) == entry
    assert not left.exists()
    assert entry_problem(entry) is None
    assert [p.name for p in entry.parent.iterdir() if p.is_dir()] == [entry.name]


def test_a_live_builds_staging_folder_is_kept_and_its_entry_waited_for(tmp_path: Path):
    """Another build holding the lock: its staging folder stays, and the next build waits
    for the lock instead of building beside it."""
    import threading

    settings = _user_ratings(tmp_path)
    entry = prepare_processed(settings)
    discard(entry)
    built = []
    with build_lock(entry):  # another build, alive
        live = entry.with_name(f".{entry.name}.l1ve__")
        live.mkdir()
        waiting = threading.Thread(target=lambda: built.append(prepare_processed(settings)))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive() and live.is_dir() and not entry.exists()
        live.rmdir()  # that build ends (here: without an entry)
    waiting.join(timeout=60)
    assert built == [entry] and entry_problem(entry) is None
