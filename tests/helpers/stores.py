"""A migrated, empty MLflow sqlite store, copied into a test's folder.

MLflow builds a new sqlite store by running its whole Alembic migration chain, about 4 s
on the CI host, and most tests only need somewhere to log. They get a copy of one store
migrated once per pytest process. Tests of a store's first use (tests/test_robustness.py)
don't seed theirs, so MLflow's own creation path stays covered.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from functools import cache
from pathlib import Path

STORE_NAME = "mlflow.db"


@cache
def _template() -> Path:
    """The migrated empty store, built on first use and removed when pytest exits."""
    from mlflow.tracking import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / STORE_NAME
    MlflowClient(f"sqlite:///{path}").search_experiments()  # runs the migrations
    return path


def seed_mlflow_store(mlruns_dir: Path) -> Path:
    """`mlruns_dir/mlflow.db` as a fresh, migrated store, unless one is already there.

    The copy's Default experiment points its artifacts into `mlruns_dir`, not into the
    template's folder, as MLflow would have set it when creating the store there."""
    store = Path(mlruns_dir) / STORE_NAME
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_template(), store)
        with sqlite3.connect(store) as connection:
            connection.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                (str(Path(mlruns_dir).resolve() / "0"),),
            )
        connection.close()
    return store


def tracked_uri(tmp_path: Path) -> str:
    """The tracking URI of a seeded store in `tmp_path/mlruns`, where trainings log by default."""
    return f"sqlite:///{seed_mlflow_store(tmp_path / 'mlruns')}"
