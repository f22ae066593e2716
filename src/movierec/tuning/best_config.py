"""Write a study's best trial as a ready-to-use `experiment=tuned/<study>` config."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from movierec.redaction import redact
from movierec.training.selection import Selection

#: overrides that set how long a trial trains, not what it is
RUN_LENGTH_KEYS = ("trainer.", "callbacks.")


def experiment_yaml(
    study_name: str,
    selection: Selection,
    best_value: float,
    best_params: dict[str, Any],
    base_overrides: list[str],
    groups: set[str],
) -> str:
    """`# @package _global_` config: the sweep's group choices + the best parameters.

    The header names the value the study optimized (`selection`); a `selection.*` given
    on the sweep's command line is kept, so the config selects epochs the same way. How
    long the sweep's trainings ran (`RUN_LENGTH_KEYS`, e.g. `trainer.max_epochs=3` to make
    it short) is listed in the header, not applied: reusing the config does not inherit it
    silently."""
    defaults: list[Any] = []
    values: dict[str, Any] = {}
    set_apart: list[str] = []
    for override in base_overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key.startswith(("hydra", "hparams_search", "sweep.")):
            continue  # how the search ran, not what it found
        if redact(value) != value:
            continue  # a store URI with its password: where results went, and a secret
        if key == "experiment":  # an experiment the sweep started from: this one builds on it
            defaults.append(f"/experiment/{value}")
        elif key in groups:
            defaults.append({f"override /{key}": value})
        elif key.startswith(RUN_LENGTH_KEYS):
            set_apart.append(override)
        else:
            _set(values, key, yaml.safe_load(value) if value else value)
    for key, value in best_params.items():
        _set(values, key.lstrip("+"), value)
    header = (
        "# @package _global_\n"
        f"# Best trial of Optuna study {study_name!r}: {selection.metric} = {best_value:.5f} "
        f"(best epoch; selection.mode={selection.mode})\n"
        f"#   python scripts/train.py experiment=tuned/{study_name}\n"
    )
    if set_apart:
        header += (
            "# The sweep also ran with these overrides, not applied here (add them to reuse):\n"
            f"#   {' '.join(set_apart)}\n"
        )
    body = {"defaults": defaults, **values} if defaults else values
    return header + yaml.safe_dump(body, sort_keys=False)


def write_experiment(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    Path(tmp).chmod(0o644)
    Path(tmp).replace(path)
    return path


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value
