"""The installed package, not the checkout: a built wheel (configs inside it) installed
into a folder of its own trains, recommends and refuses bad input from an empty folder
outside the checkout, through its console scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip wheel` of the project, installed with `--target` (its dependencies come from
    this environment); the folder holding the package and its `bin/` console scripts."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy: setuptools writes build/ into the tree it builds
    top_level = {".venv", ".git", "data", "mlruns", "outputs", "multirun", "build", "dist"}

    def skip(folder: str, names: list[str]) -> set[str]:  # only the checkout's own folders
        if Path(folder) == PROJECT_ROOT:
            return {n for n in names if n in top_level or n.endswith(".egg-info")}
        return {n for n in names if n.endswith(".egg-info")}

    shutil.copytree(PROJECT_ROOT, source, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"),
         str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("movierec-*.whl")
    target = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    assert (target / "movierec" / "conf" / "train.yaml").is_file()
    return target


def _run(installed: Path, cwd: Path, program: str, *args: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "MLFLOW_"))}
    env["PYTHONPATH"] = str(installed)  # before the checkout's editable install
    env["MOVIELENS_MIRROR"] = os.environ.get(
        "MOVIELENS_MIRROR", str(PROJECT_ROOT.parent / "shared" / "data" / "movielens")
    )
    return subprocess.run(
        [str(installed / "bin" / program), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.integration
def test_installed_wheel_trains_and_recommends_from_an_empty_folder(
    installed: Path, tmp_path: Path, real_mirror: Path
):
    work = tmp_path / "empty"
    work.mkdir()
    trained = _run(installed, work, "movierec-train", "data=ml_100k", "model=mf",
                   "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
                   "callbacks.progress_bar=null")  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import movierec; print(movierec.__file__)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(installed))  # the wheel, not the checkout
    client = MlflowClient(f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FINISHED" and run.data.tags["dataset"] == "ml_100k"
    assert (work / "data" / "processed").is_dir() and (work / "outputs" / "train").is_dir()
    top = _run(installed, work, "movierec-recommend", f"model={run.info.run_id}", "user_id=1",
               "k=3")  # fmt: skip
    assert top.returncode == 0, top.stderr[-3000:]
    assert f"top 3 for userId 1 from run {run.info.run_id}" in top.stdout
    refused = _run(installed, work, "movierec-recommend", f"model={run.info.run_id}",
                   "user_id=999999")  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: user_id=999999")
