"""What a training shows on the console: no third-party chatter, one short result table,
the run's name and links; and run names that say what differs and never collide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from movierec.tasks.result_table import result_lines
from movierec.tracking.recorder import run_name_for
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import TINY_DATA
from tests.helpers.sweeps import sweep_env


def test_training_console_is_quiet_and_ends_with_the_table_and_the_run_url(tmp_path: Path):
    command = [sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), *TINY_DATA,
               "model=mf", "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    done = subprocess.run(
        command, env=sweep_env(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for word in ("Warning", "Tip", "v_num", "Downloading artifacts"):
        assert word not in done.stdout + done.stderr, word
    lines = done.stdout.strip().splitlines()
    run_id = (tmp_path / "run" / "mlflow_run_id").read_text().strip()
    assert lines[-1].startswith("view      http://") and lines[-1].endswith(f"/runs/{run_id}")
    table = lines[lines.index(next(x for x in lines if x.startswith("selected"))) : -2]
    assert table[0].startswith("selected  val/rmse ") and table[1].startswith("test      RMSE")
    assert all(len(line) <= 100 for line in table), table
    assert lines[-3].startswith("run       mf-synthetic-random-seed0-")
    # what the screen leaves out is in metrics.json
    assert '"peak_rss_mb"' in (tmp_path / "run" / "metrics.json").read_text()


def test_result_table_shows_the_rating_and_ranking_metrics_at_each_k():
    metrics = {"selection": "max(val/ndcg_at_10)", "val/ndcg_at_10": 0.25, "best_epoch": 7,
               "epochs": 20, "test/ndcg_at_10": 0.3, "test/recall_at_10": 0.2,
               "test/map_at_10": 0.1, "test/ndcg_at_20": 0.35, "peak_rss_mb": 900.0}  # fmt: skip
    lines = result_lines(metrics, {"run": "lightgcn-x"})
    assert lines[0] == "selected  val/ndcg_at_10 0.2500 (max) at epoch 7 (epochs 0–19)"
    assert lines[1].split() == ["K", "NDCG@K", "Recall@K", "MAP@K"]  # no RMSE: ranking only
    assert lines[2].split() == ["10", "0.3000", "0.2000", "0.1000"]
    assert lines[3].split() == ["20", "0.3500", "–", "–"]
    assert lines[-1] == "run       lightgcn-x" and not [x for x in lines if "rss" in x]


def test_run_names_say_the_experiment_and_never_collide():
    seed = run_name_for({"experiment": "seed_notebook_sage"}, "sage", "ml_100k-random", 0)
    plain = run_name_for({"experiment": "None"}, "sage", "ml_100k-random", 0)
    assert seed.startswith("seed_notebook_sage-ml_100k-random-seed0-")
    assert plain.startswith("sage-ml_100k-random-seed0-")
    same_second = {run_name_for({}, "mf", "ml_100k-random", 0) for _ in range(20)}
    assert len(same_second) == 20


def test_a_bad_setting_stops_before_any_run_and_a_missing_model_is_one_line(tmp_path: Path):
    env = sweep_env(tmp_path)  # an MLflow store of its own under tmp_path/mlruns
    train = [sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), *TINY_DATA]
    for bad in ("model.objective.loss=hinge", "trainer.max_epochs=-3"):
        done = subprocess.run([*train, bad], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
        assert done.stderr.startswith(f"error: {bad.split('=')[0]}=")
    serve = [sys.executable, str(PROJECT_ROOT / "scripts" / "serve.py"), "model=deadbeef"]
    done = subprocess.run(serve, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "deadbeef" in done.stderr and "Traceback" not in done.stderr + done.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
