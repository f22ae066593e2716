"""The model registry: register a run's model and move the `champion` alias only when the
new model beats the current champion on the selection metric.

Each registered version carries tags `selection.metric`, `selection.mode`,
`selection.value`, `dataset` and `split`; the alias moves when the champion is missing,
or the new version has the same dataset, split kind and selection metric and a better
value. The run gets the decision as tags (`registry.version`, `registry.champion`,
`registry.decision`), so a person can see why a model was or was not promoted.
"""

from __future__ import annotations

import logging
import math

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"


def register_model(
    client: MlflowClient,
    name: str,
    model_uri: str,
    run_id: str,
    *,
    metric: str,
    mode: str,
    value: float,
    dataset: str,
    split: str,
    alias: str = CHAMPION,
) -> dict[str, str]:
    """Register `model_uri` under `name`, maybe move `alias`; the decision tags."""
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
            raise
    tags = {
        "selection.metric": metric,
        "selection.mode": mode,
        "selection.value": repr(float(value)),
        "dataset": dataset,
        "split": split,
    }
    version = client.create_model_version(name, model_uri, run_id=run_id, tags=tags)
    promote, reason = _decide(client, name, alias, tags, float(value))
    if promote:
        client.set_registered_model_alias(name, alias, version.version)
    decision = {
        "registry.name": name,
        "registry.version": str(version.version),
        "registry.champion": str(promote).lower(),
        "registry.decision": reason,
    }
    log.info("registered %s version %s: %s", name, version.version, reason)
    return decision


def _decide(
    client: MlflowClient, name: str, alias: str, tags: dict[str, str], value: float
) -> tuple[bool, str]:
    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return True, f"no {alias} yet: this version becomes {alias}"
    theirs = current.tags
    for key in ("dataset", "split", "selection.metric", "selection.mode"):
        if theirs.get(key) != tags[key]:
            return False, (
                f"kept {alias} version {current.version}: its {key} is {theirs.get(key)!r}, "
                f"this one's {tags[key]!r}, so they are not compared"
            )
    best = float(theirs.get("selection.value", "nan"))
    better = value < best if tags["selection.mode"] == "min" else value > best
    if math.isnan(best) or (not math.isnan(value) and better):
        return True, (
            f"{tags['selection.metric']} {value:.6g} beats {alias} version {current.version}'s "
            f"{best:.6g}: this version becomes {alias}"
        )
    return False, (
        f"kept {alias} version {current.version}: its {tags['selection.metric']} {best:.6g} "
        f"is not beaten by {value:.6g}"
    )
