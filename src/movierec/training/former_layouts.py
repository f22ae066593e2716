"""What checkpoints written before 2026-12-05 hold, read as today's settings.

Until then the objective's settings sat flat in the model node (`model.loss`, …, now
`model.objective.loss`, …) and the training module took the ranking and selection settings
under names of its own (`ranking_k`, `validate_ranking`, `validation_users`,
`selection_metric`, `selection_mode`). A checkpoint of that time still loads
(`checkpoints.load_predictor`) and still resumes (`tracking.resume`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from movierec.objective import Objective

#: the objective's keys, which stood flat in the model node and the module's arguments
OBJECTIVE_KEYS = tuple(f.name for f in fields(Objective))
#: the module's former argument → the key of today's `ranking` / `selection` argument
RANKING_KEYS = {"ranking_k": "k", "relevant_rating": "relevant_rating",
                "validate_ranking": "validate", "validation_users": "val_users"}  # fmt: skip
SELECTION_KEYS = {"selection_metric": "metric", "selection_mode": "mode"}


def grouped_arguments(hparams: dict[str, Any]) -> dict[str, Any]:
    """The `objective`, `ranking` and `selection` arguments a checkpoint of the former
    layout means (empty for one of today's: Lightning drops arguments the module does not
    name, so the former ones would be lost without a word)."""
    grouped: dict[str, Any] = {}
    for group, keys in (
        ("objective", dict(zip(OBJECTIVE_KEYS, OBJECTIVE_KEYS, strict=True))),
        ("ranking", RANKING_KEYS),
        ("selection", SELECTION_KEYS),
    ):
        found = {new: hparams[old] for old, new in keys.items() if old in hparams}
        if found and group not in hparams:
            grouped[group] = found
    return grouped


def current_identity(settings: dict[str, str]) -> dict[str, str]:
    """A checkpoint's recorded run settings (flattened `model.*`, `data.*`, `split.*`)
    with the objective's former flat keys under `model.objective`."""
    former = {f"model.{key}": f"model.objective.{key}" for key in OBJECTIVE_KEYS}
    return {former.get(key, key): value for key, value in settings.items()}
