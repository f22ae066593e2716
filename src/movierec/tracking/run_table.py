"""The runs of an experiment as one table for a comparison report: one row per finished
training run (not CV parents, sweep parents or reports), its group (the experiment it
ran, else its model), dataset, seed, fold, metrics, per-user test file and learning curve."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from movierec.ranking.significance import PER_USER_FILE
from movierec.tracking.comparison import load_runs

ROLE_TAG = "movierec.role"  # report: a comparison report's own run


def report_runs(
    tracking_uri: str, experiment: str, filter_string: str, folder: Path
) -> pd.DataFrame:
    """Columns: run_id, dataset, group, seed, fold, selection, every `test/*` and `*_best`
    metric, per_user (a downloaded CSV path or None), curve (the selection metric per
    epoch). Per-user files are downloaded under `folder`."""
    runs = load_runs(tracking_uri, experiment, filter_string)
    if runs.empty:
        return runs
    tag = lambda name: runs.get(f"tags.{name}", pd.Series(None, index=runs.index))  # noqa: E731
    keep = (tag("fold") != "all") & (tag("optuna.role") != "study") & (tag(ROLE_TAG) != "report")
    runs = runs[keep.fillna(True)]
    client = MlflowClient(tracking_uri)
    experiment_choice = tag("choice.experiment").reindex(runs.index)
    table = pd.DataFrame(
        {
            "run_id": runs["run_id"],
            "dataset": tag("dataset").reindex(runs.index),
            "group": experiment_choice.where(~experiment_choice.isin([None, "None", "null"]),
                                             tag("model").reindex(runs.index)),
            "seed": tag("seed").reindex(runs.index),
            "fold": tag("fold").reindex(runs.index),
            "selection": tag("selection.metric").reindex(runs.index),
        }
    )  # fmt: skip
    metrics = [c for c in runs if c.startswith(("metrics.test/",)) or c.endswith("_best")]
    for column in metrics:
        table[column.removeprefix("metrics.")] = runs[column]
    table["per_user"] = [_per_user(client, r, folder) for r in table["run_id"]]
    table["curve"] = [
        [m.value for m in sorted(client.get_metric_history(r, s), key=lambda m: m.step)]
        if isinstance(s, str) else []
        for r, s in zip(table["run_id"], table["selection"], strict=True)
    ]  # fmt: skip
    return table.reset_index(drop=True)


def _per_user(client: MlflowClient, run_id: str, folder: Path) -> str | None:
    """The run's per-user test metrics, downloaded; None when it logged none."""
    if not any(a.path == PER_USER_FILE for a in client.list_artifacts(run_id)):
        return None
    target = folder / run_id
    target.mkdir(parents=True, exist_ok=True)
    return client.download_artifacts(run_id, PER_USER_FILE, str(target))
