"""One self-contained HTML page comparing models: a leaderboard (mean ± std over seeds or
folds of every logged test metric), each model's paired significance test against the
best one, learning curves side by side and each model's top-10 for a few users.

Significance, per dataset, against the group with the best mean `metric`:
- per user (ranking metrics with per-user files): the Wilcoxon signed-rank test over the
  test users (each user's value averaged over the group's seeds, paired by fold and user);
- over seeds or folds (any metric, two or more runs per group paired by seed and fold):
  the paired t-test;
each with Holm's correction over the dataset's other groups (`†`: holds at 5 %).
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel

from movierec.ranking.significance import holm, wilcoxon_p
from movierec.tracking.plots import plt

MAXIMIZED = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate", "coverage")
#: what a person compares first (the result table, the runs view's columns, the report's
#: first columns); the rest stays in metrics.json and MLflow
MAIN_METRICS = ("rmse", "mae", "ndcg", "recall", "map")


def is_main_metric(name: str) -> bool:
    """RMSE, MAE, NDCG, Recall and MAP (at any K) of validation or test, or their best
    epoch's value (`<name>_best`)."""
    part, _, metric = name.partition("/")
    base = metric.removesuffix("_best").split("_at_")[0]
    return part in ("val", "test") and base in MAIN_METRICS


def ranking_metric(runs: pd.DataFrame, metric: str | None = None) -> str:
    """`metric`, else what ranks models by default: test NDCG@10 where logged, else RMSE."""
    return metric or ("test/ndcg_at_10" if "test/ndcg_at_10" in runs else "test/rmse")


def comparison_report(
    runs: pd.DataFrame, metric: str | None = None, title: str = "Model comparison",
    top_lists: dict[str, pd.DataFrame] | None = None,
) -> str:  # fmt: skip
    """The page for `runs` (columns dataset, group, seed, fold, metric columns, and
    optionally per_user paths and curve lists); `metric` ranks the groups (default: test
    NDCG@10 where logged, else test RMSE)."""
    metric = ranking_metric(runs, metric)
    sections = [f"<h1>{html.escape(title)}</h1>", _method_note(metric)]
    for dataset, part in runs.groupby("dataset", sort=False):
        board = leaderboard(part, metric)
        sections.append(f"<h2>{html.escape(str(dataset))}</h2>")
        sections.append(_board_html(board, metric))
        sections.append(_curves_html(part))
    for group, top in (top_lists or {}).items():
        sections.append(f"<h2>top-10 of {html.escape(group)}</h2>")
        sections.append(top.to_html(index=False, classes="top", border=0))
    style = ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}"
             "th:first-child,td:first-child{text-align:left}</style>")  # fmt: skip
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}" \
        f"</title>{style}</head><body>{''.join(sections)}</body></html>"  # fmt: skip


def leaderboard(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per group: runs, mean and std of every metric column, the p-values against the
    best group and whether they hold after Holm; best first."""
    metrics = [c for c in runs if c.startswith("test/") or c.endswith("_best")]
    grouped = runs.groupby("group", sort=False)
    board = (
        grouped[metrics]
        .mean()
        .add_suffix(" mean")
        .join(grouped[metrics].std(ddof=1).add_suffix(" std"))
    )
    board.insert(0, "runs", grouped.size())
    ascending = not is_maximized(metric)
    board = board.sort_values(f"{metric} mean", ascending=ascending, na_position="last")
    best = board.index[0]
    per_user = {g: _per_user_mean(part, metric) for g, part in grouped}
    tests = {}
    for group in board.index[1:]:
        tests[group] = (
            _p_user(per_user[best], per_user[group]),
            _p_runs(runs, best, group, metric),
        )
    for column, position in (("p per user", 0), ("p over runs", 1)):
        values = {g: t[position] for g, t in tests.items() if not math.isnan(t[position])}
        held = dict(zip(values, holm(list(values.values())), strict=True)) if values else {}
        board[column] = [values.get(g, math.nan) for g in board.index]
        board[f"{column} holm"] = [held.get(g) for g in board.index]
    return board


def is_maximized(metric: str) -> bool:
    name = metric.split("/")[-1]
    return name.split("_at_")[0] in MAXIMIZED or name.startswith(MAXIMIZED)


def _per_user_mean(runs: pd.DataFrame, metric: str) -> pd.Series | None:
    """The group's per-user `metric` (test/<name>), averaged over its seeds, by (fold,
    user); None without per-user files (a run written before they existed) or for a
    metric they do not hold."""
    paths = runs.get("per_user")
    name = metric.removeprefix("test/")
    if paths is None or paths.isna().any() or not all(Path(p).exists() for p in paths):
        return None
    tables = [pd.read_csv(p).assign(fold=f) for p, f in zip(paths, runs["fold"], strict=True)]
    if not all(name in t for t in tables):
        return None
    return pd.concat(tables).groupby(["fold", "userId"])[name].mean()


def _p_user(best: pd.Series | None, other: pd.Series | None) -> float:
    if best is None or other is None:
        return math.nan
    paired = pd.concat([best, other], axis=1, join="inner").to_numpy()
    return wilcoxon_p(paired[:, 1], paired[:, 0]) if len(paired) else math.nan


def _p_runs(runs: pd.DataFrame, best: str, other: str, metric: str) -> float:
    """Paired t-test of `metric` over the seeds and folds both groups ran."""
    by_run = runs.set_index(["seed", "fold"])
    a = by_run[runs["group"].to_numpy() == best][metric]
    b = by_run[runs["group"].to_numpy() == other][metric]
    paired = pd.concat([a, b], axis=1, join="inner").dropna().to_numpy()
    if len(paired) < 2 or not np.any(paired[:, 0] - paired[:, 1]):
        return math.nan
    return float(ttest_rel(paired[:, 0], paired[:, 1]).pvalue)


def _board_html(board: pd.DataFrame, metric: str) -> str:
    others = [c.removesuffix(" mean") for c in board if c.endswith(" mean")]
    others = sorted((m for m in others if m != metric), key=lambda m: (not is_main_metric(m), m))
    titles = ["model", "runs", metric, "p per user", "p over runs", *others]
    rows = ["<tr>" + "".join(f"<th>{html.escape(t)}</th>" for t in titles) + "</tr>"]
    for group, row in board.iterrows():
        p_cells = [_p(row[c], row[f"{c} holm"], group == board.index[0])
                   for c in ("p per user", "p over runs")]  # fmt: skip
        cells = [html.escape(str(group)), str(row["runs"]),
                 _spread(row[f"{metric} mean"], row[f"{metric} std"]), *p_cells,
                 *(_spread(row[f"{m} mean"], row[f"{m} std"]) for m in others)]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table class='leaderboard'>{''.join(rows)}</table>"


def _spread(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def _p(value: float, holds: bool | None, best: bool) -> str:
    if best:
        return "best"
    return "–" if pd.isna(value) else f"{value:.2g}{' †' if holds else ''}"


def _curves_html(runs: pd.DataFrame) -> str:
    """Each group's selection-metric curve (mean over its runs), side by side."""
    curves = runs.get("curve")
    groups = [(g, part) for g, part in runs.groupby("group", sort=False)
              if curves is not None and any(len(c) for c in part["curve"])]  # fmt: skip
    if not groups:
        return ""
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3), squeeze=False)
    for ax, (group, part) in zip(axes[0], groups, strict=True):
        for curve in part["curve"]:
            ax.plot(range(len(curve)), curve, alpha=0.6)
        ax.set(title=str(group), xlabel="epoch", ylabel=str(part["selection"].iloc[0]))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<h3>learning curves</h3><img alt='learning curves' src='data:image/png;base64,{data}'>"


def _method_note(metric: str) -> str:
    return (
        f"<p>Groups ranked by mean {html.escape(metric)}. p per user: Wilcoxon signed-rank "
        "test over the test users against the best group; p over runs: paired t-test over "
        "seeds and folds; † holds after Holm's correction (5 %).</p>"
    )
