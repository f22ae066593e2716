"""The tracking seam: a training runs with an in-memory tracker written here alone, and
records through it what the MLflow tracker records (params, tags, epoch curves, summary
metrics, files, the servable model), with no MLflow store touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from pytorch_lightning.loggers import Logger

from movierec.serving.pyfunc import load_answerer
from movierec.tasks.train import train
from movierec.tracking.tracker import RunRequest, ServableModel
from tests.helpers.configs import FAST, TINY_DATA, compose_train


class MemoryLogger(Logger):
    """Lightning's side of a `MemoryRun`: each logged epoch metric into its history."""

    def __init__(self, run: MemoryRun) -> None:
        super().__init__()
        self.run = run

    name, version = "memory", "0"

    def log_metrics(self, metrics, step=None) -> None:
        for key, value in metrics.items():
            self.run.history.setdefault(key, []).append((step or 0, float(value)))

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass


class MemoryRun:
    def __init__(self, run_id: str, request: RunRequest, folder: Path) -> None:
        self.run_id, self.request, self.folder = run_id, request, folder
        self.params, self.tags, self.history, self.files = {}, dict(request.tags), {}, []
        self.datasets, self.status = [], "RUNNING"

    def __enter__(self) -> MemoryRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.status = "FINISHED" if exc_type is None else "FAILED"

    def finish(self) -> None:
        self.status = "FINISHED"

    def log_params(self, params) -> None:
        self.params.update(params)

    def set_tags(self, tags) -> None:
        self.tags.update(tags)

    def log_metrics(self, metrics, step=0) -> None:
        for key, value in metrics.items():
            self.history.setdefault(key, []).append((step, float(value)))

    def log_artifact(self, path, artifact_path=None) -> None:
        self.files.append(f"{artifact_path or '.'}/{Path(path).name}")

    def log_dataset(self, name, source, checksum) -> None:
        self.datasets.append((name, checksum))

    def metric_history(self, key):
        return self.history.get(key, [])

    def epoch_logger(self) -> Logger:
        return MemoryLogger(self)

    def publish_model(self, model: ServableModel) -> str:
        shutil.copytree(model.bundle, self.folder / "model")  # the caller's folder is temporary
        return f"memory:{self.run_id}/model"

    def register(self, name, model_uri, **decision):
        return {"registered": name}

    def links(self, ui_url, sort_by, ascending, columns):
        return {}


class MemoryTracker:
    def __init__(self, folder: Path) -> None:
        self.folder, self.runs = folder, []

    def open_run(self, request: RunRequest) -> MemoryRun:
        run = MemoryRun(f"run{len(self.runs)}", request, self.folder / str(len(self.runs)))
        self.runs.append(run)
        return run


def test_a_training_records_through_an_in_memory_tracker(tmp_path: Path):
    cfg = compose_train(
        tmp_path, [*TINY_DATA, *FAST, "model=mf", "trainer.max_epochs=3", "ranking.k=5"]
    )
    tracker = MemoryTracker(tmp_path / "memory")
    best = train(cfg, tracker=tracker)

    (run,) = tracker.runs
    assert run.status == "FINISHED" and run.tags["model"] == "mf"
    assert run.params["model.lr"] == str(cfg.model.lr)
    # one point per epoch, from Lightning through the run's epoch logger
    assert len(run.history["val/rmse"]) == 3
    assert run.history["val/rmse_best"] == [(0, pytest.approx(best))]
    assert {"./config.yaml", "id_maps/id_maps", "plots/curves.png"} <= set(run.files)
    assert any(name.startswith("checkpoints/") for name in run.files)
    assert run.datasets and run.datasets[0][0] == "synthetic"
    # the published model answers a rating request
    answer = load_answerer(run.folder / "model")
    users = answer.recommender.model.users["userId"].tolist()[:2]
    movies = answer.recommender.model.movies["movieId"].tolist()[:2]
    ratings = answer(pd.DataFrame({"userId": users, "movieId": movies}))
    assert len(ratings) == 2 and ratings.notna().all()
    assert not (tmp_path / "mlruns").exists()  # no MLflow store was written


def test_a_failed_training_ends_its_run_failed(tmp_path: Path, monkeypatch):
    from movierec.training.module import RatingPredictor

    def broken(*args, **kwargs):
        raise RuntimeError("the fit broke")

    # the run opens once the data is set up, inside the fit; the first step then fails
    monkeypatch.setattr(RatingPredictor, "training_step", broken)
    cfg = compose_train(tmp_path, [*TINY_DATA, *FAST, "model=mf"])
    tracker = MemoryTracker(tmp_path / "memory")
    with pytest.raises(RuntimeError, match="the fit broke"):
        train(cfg, tracker=tracker)
    assert [run.status for run in tracker.runs] == ["FAILED"]
