"""Side-by-side comparison of finished runs: a sorted table and a bar plot.

By default runs are sorted by the best epoch's value of the metric each one selected on
(`selection`, from the run's tags or params), best first in that metric's direction; runs
that selected on different metrics are listed in one group per metric.
"""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd

from movierec.checks import check_choice
from movierec.errors import ConfigError
from movierec.tracking.plots import plt
from movierec.training.selection import MODES, Selection

# val: each run's best selection metric, in its direction; test: test RMSE, lowest first
SORTS = ("val", "test")
SELECTED = "selection"  # columns added by load_runs: selection, selection.best
BASE_COLUMNS = {
    "run_id": "run",
    "tags.mlflow.runName": "name",
    "tags.model": "model",
    "tags.dataset": "dataset",
    "tags.split": "split",
    "tags.fold": "fold",
    SELECTED: "selected on",
    "status": "status",
    f"{SELECTED}.best": "best val",
    "metrics.test/rmse": "test RMSE",
    "metrics.test/mae": "test MAE",
    "metrics.summary/epochs": "epochs",
}
#: ranking metrics shown for every K the runs logged (`test/ndcg_at_10` → test NDCG@10)
RANKING_COLUMNS = {"recall": "Recall", "ndcg": "NDCG", "map": "MAP"}
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
    sort: str = "val",
    finished_only: bool = True,
) -> pd.DataFrame:
    """Runs of `experiment` (FINISHED ones unless `finished_only=False`), best first: by
    their selection metric's best value (`sort="val"`) or by test RMSE (`"test"`)."""
    check_choice("sort", sort, SORTS)
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
    runs = with_selection(runs)
    if sort == "test":
        key = "metrics.test/rmse"
        if key not in runs:
            runs[key] = float("nan")
        return runs.sort_values(key, na_position="last").reset_index(drop=True)
    return sort_by_selection(runs)


def with_selection(runs: pd.DataFrame) -> pd.DataFrame:
    """Add `selection` (e.g. `max(val/ndcg_at_10)`, "" when unknown) and `selection.best`
    (that metric's `<metric>_best`) from each run's tags, else its params; runs logged
    before `selection` existed are read from their `optimized_metric` param."""
    runs = runs.copy()
    described, best = [], []
    for _, row in runs.iterrows():
        selection = _run_selection(row)
        described.append(selection.describe() if selection else "")
        value = row.get(f"metrics.{selection.best_key}") if selection else None
        best.append(float(value) if value is not None and pd.notna(value) else float("nan"))
    runs[SELECTED] = described
    runs[f"{SELECTED}.best"] = best
    return runs


def sort_by_selection(runs: pd.DataFrame) -> pd.DataFrame:
    """Each selection's runs together (groups in name order, unknown last), best first in
    the group's direction, runs without a value last."""
    groups = []
    for described, group in runs.groupby(SELECTED, sort=True):
        ascending = not str(described).startswith("max(")
        groups.append(
            (described == "", group.sort_values(f"{SELECTED}.best", ascending=ascending,
                                                na_position="last"))
        )  # fmt: skip
    ordered = [group for _, group in sorted(groups, key=lambda item: item[0])]
    return pd.concat(ordered).reset_index(drop=True)


def _run_selection(row: pd.Series) -> Selection | None:
    def first(*keys: str) -> str | None:
        for key in keys:
            value = row.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    metric = first("tags.selection.metric", "params.selection.metric", "params.optimized_metric")
    mode = first(
        "tags.selection.mode", "params.selection.mode", "params.callbacks.model_checkpoint.mode"
    )
    if metric is None or mode not in MODES:
        return None
    try:
        return Selection(metric, mode)
    except ConfigError:
        return None


def comparison_table(runs: pd.DataFrame, max_params: int = 6) -> pd.DataFrame:
    """Run identity, metrics and the params that differ between the runs."""
    present = {k: v for k, v in BASE_COLUMNS.items() if k in runs}
    ranking = ranking_columns(runs.columns)
    if ranking:  # after the test RMSE/MAE, before the epochs
        items = list(present.items())
        at = next((i for i, (k, _) in enumerate(items) if k == "metrics.summary/epochs"), None)
        at = len(items) if at is None else at
        present = dict([*items[:at], *ranking.items(), *items[at:]])
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


def ranking_columns(columns) -> dict[str, str]:
    """`metrics.test/<recall|ndcg|map>_at_<K>` columns → titles, K by K (`ranking.k` may
    be a list, so a run has several)."""
    found = {}
    names = list(RANKING_COLUMNS)
    for column in columns:
        match = re.fullmatch(r"metrics\.test/([a-z_]+)_at_(\d+)", str(column))
        if match and match[1] in RANKING_COLUMNS:
            k, metric = int(match[2]), match[1]
            found[k, names.index(metric)] = (column, f"test {RANKING_COLUMNS[metric]}@{k}")
    return dict(found[key] for key in sorted(found))


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
