"""The MLflow UI as a person sees it: `scripts/ui_screenshots.py` opens the runs table and
the compare view of a cross-validation run in headless Chromium, on a store made here.

Needs Debian's `chromium` (`.ci/run` installs it): skipped without it, failed when CI=true.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image
from mlflow.tracking import MlflowClient

from movierec.tasks.cross_validation import cross_validate
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import QUIET, TINY_DATA, compose_train
from tests.helpers.stores import tracked_uri

WIDTH, HEIGHT = 1800, 1000


def _section(lines: list[str], start: list[str], end: list[str] | None) -> list[str]:
    """The lines after the first run of lines `start`, up to the next run `end` (or the end)."""

    def find(run: list[str], after: int) -> int:
        for i in range(after, len(lines) - len(run) + 1):
            if lines[i : i + len(run)] == run:
                return i
        raise AssertionError(f"{run} not on the page:\n" + "\n".join(lines[:200]))

    first = find(start, 0) + len(start)
    return lines[first : find(end, first) if end else len(lines)]


def _distinct_colours(png: Path) -> int:
    pixels = image.imread(png)
    assert pixels.shape[:2] == (HEIGHT, WIDTH), pixels.shape
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))


@pytest.mark.slow
def test_mlflow_ui_shows_cv_runs_with_hyperparameters_not_paths(tmp_path: Path, chromium):
    uri = tracked_uri(tmp_path)
    cv = ["model=mf", "split=kfold", "split.n_folds=2", "split.fold=all", "trainer.max_epochs=1"]
    overrides = [*TINY_DATA, *QUIET, f"logger.mlflow.tracking_uri={uri}", *cv]
    cross_validate(compose_train(tmp_path, overrides))
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2

    out = tmp_path / "shots"
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "ui_screenshots.py"),
         "--tracking-uri", uri, "--experiment", "synthetic", "--out", str(out),
         "--window", f"{WIDTH},{HEIGHT}"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning" not in result.stderr, result.stderr[-3000:]

    # the runs table, not MLflow 3's GenAI overview (traces, tokens)
    table = (out / "runs.txt").read_text().splitlines()
    # the view the training stored: its selection metric and the main test metrics as columns
    assert {"val/rmse_best", "test/rmse", "test/ndcg_at_10"} <= set(table), table[:80]
    assert parent.info.run_name in table
    assert {"Run Name", "Training runs", "matching runs"} <= set(table)
    assert "Token Usage" not in table

    page = (out / "compare.txt").read_text().splitlines()
    assert {c.info.run_name for c in children} <= set(page)
    # the compare table's params: every param of the fold runs, and no machine path
    params = _section(page, ["Parameters", "Show diff only"], ["Metrics", "Show diff only"])
    logged = set(children[0].data.params)
    assert logged <= set(params), sorted(logged - set(params))[:10]
    assert {"model.net.dim", "model.lr", "seed"} <= logged
    assert not [line for line in params if line.startswith("paths.") or "dirpath" in line]
    assert not [line for line in params if str(tmp_path) in line]
    # the paths are there, as tags
    assert "path.paths.output_dir" in _section(page, ["Tags", "Show diff only"], None)
    # what the parallel-coordinates plot offers: params that differ (the folds of one CV
    # differ in none: their split sizes are tags), never a path
    offered = _section(page, ["Parameters:"], ["Metrics:"])
    assert offered == ["Please select parameters"] or all(n in logged for n in offered), offered
    assert not [name for name in offered if name.startswith("paths.") or "dir" in name]
    first_metric = _section(page, ["Metrics:"], ["Clear All"])
    assert not [name for name in first_metric if name.startswith("split")], first_metric

    # screenshots of the window's size with a drawn page in them (a blank page has 1 colour)
    for name in ("runs", "compare"):
        assert _distinct_colours(out / f"{name}.png") > 50
