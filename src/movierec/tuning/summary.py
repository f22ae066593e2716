"""What a sweep prints when it ends: its trials as one table sorted by value (best first),
the best trial's parameters, and where the study's plots and tuned config are."""

from __future__ import annotations

import math
from typing import Any

import optuna

from movierec.training.selection import Selection


def sweep_summary(
    study: optuna.Study, selection: Selection, names: list[str], where: dict[str, str]
) -> list[str]:
    """Lines of the summary: `names` are the searched parameters (the table's columns, by
    their last dotted part), `where` maps a label to a path (plots, tuned config, run)."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    sign = 1 if selection.mode == "min" else -1
    trials.sort(key=lambda t: (t.value is None, sign * (t.value or 0.0), t.number))
    short = [name.rsplit(".", 1)[-1] for name in names]
    rows = [["trial", "state", selection.metric, *short]]
    rows += [[str(t.number), t.state.name.lower(), _shown(t.value),
              *(_shown(t.params.get(name)) for name in names)] for t in trials]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    best = best_trial(study)
    if best is not None:
        lines.append(f"best trial {best.number}: {selection.metric} = {best.value:.5f}")
        lines += [
            f"  {name} = {_shown(best.params[name])}" for name in names if name in best.params
        ]
    return lines + [f"{label}: {path}" for label, path in where.items()]


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The study's best trial; None before any trial completed."""
    try:
        return study.best_trial
    except ValueError:  # no completed trial
        return None
