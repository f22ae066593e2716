"""What a training ends with: its `metrics.json`, and the table of what was selected, the
test metrics that matter, and where to look at the run (bookkeeping stays in
`metrics.json` and MLflow).

    selected  val/rmse 0.9112 (min) at epoch 12 (epochs 0–32)
    test      RMSE 0.9021  MAE 0.7149
       K   NDCG@K  Recall@K   MAP@K
      10   0.3806    0.2007  0.2344
    run       sage-ml_100k-predefined-u1-seed0-3fa2
    runs      http://127.0.0.1:5000/#/experiments/2/runs?viewStateShareKey=…
    view      http://127.0.0.1:5000/#/experiments/2/runs/<run id>
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from movierec.tracking.report_html import is_main_metric

#: the ranking columns shown per K: (metric name prefix, header)
RANKING_COLUMNS = (("ndcg", "NDCG@K"), ("recall", "Recall@K"), ("map", "MAP@K"))


def report_result(
    metrics: Mapping[str, Any], links: Mapping[str, str], output_dir: Path, *, print_table: bool
) -> None:
    """Write `metrics.json` into `output_dir`; print the table when `print_table`."""
    write_json(output_dir / "metrics.json", dict(metrics))
    if print_table:
        print("\n".join(result_lines(metrics, links)))


def write_json(path: Path, payload: dict) -> None:
    """`payload` as indented JSON at `path`, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)


def result_lines(metrics: Mapping[str, Any], links: Mapping[str, str]) -> list[str]:
    """The table's lines (each under 100 characters, URLs aside); `links` maps a label
    (run, runs, view) to a name or URL, in order."""
    lines = [_selected_line(metrics)]
    rating = {"RMSE": metrics.get("test/rmse"), "MAE": metrics.get("test/mae")}
    rated = [f"{label} {value:.4f}" for label, value in rating.items() if _number(value)]
    if rated:
        lines.append("test      " + "  ".join(rated))
    lines += _ranking_lines(metrics)
    lines += [f"{label:<9} {value}" for label, value in links.items()]
    return lines


def _selected_line(metrics: Mapping[str, Any]) -> str:
    selection = str(metrics.get("selection", ""))  # "min(val/rmse)"
    metric = selection[4:-1] if selection[:4] in ("min(", "max(") else selection
    value = metrics.get(metric)
    shown = f"{value:.4f}" if _number(value) else "–"
    epochs = f"at epoch {metrics.get('best_epoch')} (epochs 0–{int(metrics.get('epochs', 0)) - 1})"
    return f"selected  {metric} {shown} ({selection[:3]}) {epochs}"


def _ranking_lines(metrics: Mapping[str, Any]) -> list[str]:
    ks = sorted({int(key.rsplit("_", 1)[1]) for key in metrics if key.startswith("test/ndcg_at_")})
    if not ks:
        return []
    lines = ["   K  " + "".join(f"{header:>10}" for _, header in RANKING_COLUMNS)]
    for k in ks:
        cells = [metrics.get(f"test/{name}_at_{k}") for name, _ in RANKING_COLUMNS]
        shown = [f"{c:>10.4f}" if _number(c) else f"{'–':>10}" for c in cells]
        lines.append(f"{k:>4}  " + "".join(shown))
    return lines


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def fold_line(fold: int, metrics: Mapping[str, Any], selected: str) -> str:
    """One cross-validation fold on one line: the selection metric and the main test ones."""
    names = [selected, "test/rmse", "test/ndcg_at_10", "test/recall_at_10"]
    cells = [f"{name} {metrics[name]:.4f}" for name in names if _number(metrics.get(name))]
    return f"fold {fold}  " + "  ".join(cells)


def summary_lines(
    summary: Mapping[str, tuple[float, float]], links: Mapping[str, str]
) -> list[str]:
    """The folds' mean ± std of the main metrics (`cv_metrics.json` has every one), one per
    line, then the parent run's name and links."""
    summary = {name: value for name, value in summary.items() if is_main_metric(name)}
    width = max((len(name) for name in summary), default=6)
    lines = [f"{'metric':<{width}}    mean ± std"]
    lines += [f"{name:<{width}}  {mean:.4f} ± {std:.4f}" for name, (mean, std) in summary.items()]
    return lines + [f"{label:<9} {value}" for label, value in links.items()]
