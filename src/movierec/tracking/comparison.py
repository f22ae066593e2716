"""Side-by-side comparison of finished runs: a sorted table and a bar plot."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from movierec.errors import ConfigError
from movierec.tracking.plots import plt

SORT_METRICS = {"val": "metrics.val/rmse_best", "test": "metrics.test/rmse"}
BASE_COLUMNS = {
    "run_id": "run",
    "tags.mlflow.runName": "name",
    "tags.model": "model",
    "tags.dataset": "dataset",
    "tags.split": "split",
    "tags.fold": "fold",
    "status": "status",
    "metrics.val/rmse_best": "val RMSE",
    "metrics.test/rmse": "test RMSE",
    "metrics.test/mae": "test MAE",
    "metrics.summary/epochs": "epochs",
}
NOISY_PARAMS = (
    "paths.",
    "hydra",
    "overrides",
    "data.cache_dir",
    "data.mirror",
    "logger.",
    "callbacks.model_checkpoint.dirpath",
    "trainer.default_root_dir",
)


def load_runs(
    tracking_uri: str,
    experiment: str,
    filter_string: str = "",
    sort: str = "test",
    finished_only: bool = True,
) -> pd.DataFrame:
    """Runs of `experiment` (FINISHED ones unless `finished_only=False`), best RMSE first."""
    if sort not in SORT_METRICS:
        raise ConfigError(f"sort={sort!r} is not valid; expected one of {', '.join(SORT_METRICS)}")
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        names = [e.name for e in mlflow.search_experiments()]
        raise ConfigError(
            f"no MLflow experiment {experiment!r} at {tracking_uri}; "
            f"found: {', '.join(names) or 'none'}"
        )
    if finished_only:
        status = "attributes.status = 'FINISHED'"
        filter_string = f"{filter_string} and {status}" if filter_string else status
    try:
        runs = mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string)
    except mlflow.exceptions.MlflowException as err:
        raise ConfigError(f"filter {filter_string!r} is not a valid MLflow filter: {err}") from None
    if runs.empty:
        return runs
    key = SORT_METRICS[sort]
    if key not in runs:
        runs[key] = float("nan")
    return runs.sort_values(key, na_position="last").reset_index(drop=True)


def comparison_table(runs: pd.DataFrame, max_params: int = 6) -> pd.DataFrame:
    """Run identity, metrics and the params that differ between the runs."""
    present = {k: v for k, v in BASE_COLUMNS.items() if k in runs}
    table = runs[list(present)].rename(columns=present)
    table["run"] = table["run"].str[:8]
    params = [
        c
        for c in runs.columns
        if c.startswith("params.")
        and not c.removeprefix("params.").startswith(NOISY_PARAMS)
        and runs[c].nunique(dropna=False) > 1
    ]
    for column in params[:max_params]:
        table[column.removeprefix("params.")] = runs[column]
    return table


def plot_comparison(runs: pd.DataFrame, path: Path, metric: str = "metrics.test/rmse") -> Path:
    """Horizontal bars of `metric` per run (labelled by run name)."""
    shown = runs.dropna(subset=[metric]) if metric in runs else runs.iloc[0:0]
    labels = shown.get("tags.mlflow.runName", shown["run_id"]).fillna("")
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.4 * len(shown) + 1)))
    ax.barh(range(len(shown)), shown[metric] if len(shown) else [], color="tab:blue")
    ax.set_yticks(range(len(shown)), labels)
    ax.invert_yaxis()
    if len(shown):
        low, high = shown[metric].min(), shown[metric].max()
        ax.set_xlim(low - 0.05, high + 0.02)
    ax.set_xlabel(metric.removeprefix("metrics.") + " (stars)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
