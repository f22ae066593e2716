"""The report task: compare the finished runs of an experiment (or those a filter picks)
on one HTML page (`movierec.tracking.report_html`), with each model's top-10 for a few
users from its best run, written to a file and logged to MLflow as a run of its own
(tag `movierec.role=report`)."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd

from movierec.errors import ConfigError, MovieRecError
from movierec.serving.recommender import Recommender
from movierec.tracking.mlflow_tracker import MlflowTracker
from movierec.tracking.report_html import comparison_report, is_maximized, ranking_metric
from movierec.tracking.run_table import ROLE_TAG, report_runs
from movierec.tracking.tracker import RunRequest


def write_report(
    tracking_uri: str, experiment: str, filter_string: str, out: Path,
    metric: str | None = None, users: int = 3, log: bool = True,
) -> Path:  # fmt: skip
    """Write the page to `out` (and log it to MLflow unless `log=False`); return `out`."""
    with tempfile.TemporaryDirectory(prefix="movierec-report-") as tmp:
        runs = report_runs(tracking_uri, experiment, filter_string, Path(tmp))
        if runs.empty:
            raise ConfigError(
                f"no finished training runs in {experiment!r} match {filter_string!r}"
            )
        if metric is not None and metric not in runs:
            raise ConfigError(f"--metric {metric!r} is not logged by these runs")
        tops = _top_lists(runs, tracking_uri, metric, users)
        page = comparison_report(runs, metric, f"{experiment}: model comparison", tops)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    if log:
        name = f"report-{datetime.now():%Y%m%d-%H%M%S}"
        tracker = MlflowTracker(tracking_uri, experiment)
        with tracker.open_run(RunRequest(name, {ROLE_TAG: "report"})) as run:
            run.log_artifact(out)
    return out


def _top_lists(
    runs: pd.DataFrame, tracking_uri: str, metric: str | None, users: int
) -> dict[str, pd.DataFrame]:
    """Each group's best run's top-10 for the first `users` users (by id) it can rank."""
    metric = ranking_metric(runs, metric)
    tops = {}
    for group, part in runs.groupby("group", sort=False):
        best = part.sort_values(metric, ascending=not is_maximized(metric)).iloc[0]
        try:
            recommender = Recommender.load(best["run_id"], tracking_uri)
            ids = sorted(recommender.model.users["userId"])[:users]
            top = recommender.recommend(ids, k=10)
        except (MovieRecError, KeyError, AttributeError):
            continue  # a run without a servable model: the leaderboard still holds it
        tops[str(group)] = top[[c for c in ("userId", "rank", "movieId", "title") if c in top]]
    return tops
