"""Optuna sweeps run for real: the command, its environment, and running it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import QUIET, TINY_DATA
from tests.helpers.stores import seed_mlflow_store

STUDY = "sage_synthetic"


def sweep_env(tmp_path: Path) -> dict[str, str]:
    seed_mlflow_store(tmp_path / "mlruns")
    return dict(
        os.environ,
        MOVIEREC_DATA_DIR=str(tmp_path / "data"),
        MOVIEREC_LOG_DIR=str(tmp_path / "logs"),
        MOVIEREC_MLRUNS_DIR=str(tmp_path / "mlruns"),
    )


def sweep_command(tmp_path: Path, *extra: str, grace: int = 3) -> list[str]:
    """A sweep with 1 s heartbeats; a trial silent for `grace` s counts as dead. 3 s keeps
    resume tests short; workers running side by side need more on a loaded CI host."""
    return [
        sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), "-m",
        # the rating-only variant: full batches, one optimisation target (val/rmse)
        "hparams_search=sage_optuna", "experiment=rating_only", *TINY_DATA, *QUIET,
        f"hydra.sweeper.best_config_dir={tmp_path / 'tuned'}",
        "hydra.sweeper.heartbeat_interval=1", f"hydra.sweeper.grace_period={grace}", *extra,
    ]  # fmt: skip


def run_sweep(tmp_path: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        sweep_command(tmp_path, *extra),
        env=sweep_env(tmp_path), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def parallel_worker_params(storage: str, n_trials: int = 6) -> list[tuple]:
    """Two workers of one study (each opened as the sweeper opens it, with the shipped
    sampler settings), asking in turn until the study has `n_trials`; every trial's params."""
    from movierec.tuning.study import open_study

    settings = ({"name": "tpe", "seed": 0}, {"name": "none"}, 1, 30)
    workers = [open_study(storage, STUDY, "minimize", *settings) for _ in range(2)]
    for number in range(n_trials):
        study = workers[number % 2]
        trial = study.ask()
        lr = trial.suggest_float("model.lr", 1e-3, 5e-2, log=True)
        trial.suggest_categorical("model.net.hidden", [32, 64, 128])
        study.tell(trial, lr)
    return [tuple(sorted(t.params.items())) for t in workers[0].get_trials()]
