"""Where a person looks at runs in the MLflow UI: a run's page, and its experiment's runs
table opened in the training view, sorted by the selection metric with the metrics that
matter as columns.

MLflow 3 has no URL parameter for a table's columns; it restores a *shared view state*
from an experiment tag `mlflow.sharedViewState.<key>` (JSON of the table's sort, filter
and columns) when the URL `#/experiments/<id>/runs?viewStateShareKey=<key>` asks for it,
in the training view (checked in headless Chromium with MLflow 3.17: `tests/test_ui.py`).
"""

from __future__ import annotations

import json
import re

from mlflow.tracking import MlflowClient

from movierec.redaction import redact

VIEW_TAG_PREFIX = "mlflow.sharedViewState."


def ui_base(tracking_uri: str, ui_url: str) -> str:
    """The UI's address: a tracking server serves it; a local store needs `mlflow ui`,
    listening on `ui_url`."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return ui_url.rstrip("/")


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def runs_table_url(
    client: MlflowClient, base: str, experiment_id: str, sort_by: str, ascending: bool,
    columns: list[str],
) -> str:  # fmt: skip
    """Store a view of the experiment's runs (sorted by metric `sort_by`, `columns` shown)
    and return the URL that opens it."""
    key = "movierec-" + re.sub(r"[^A-Za-z0-9]+", "-", sort_by).strip("-")
    shown = [_metric_key(name) for name in dict.fromkeys([sort_by, *columns])]
    state = {
        "orderByKey": _metric_key(sort_by),
        "orderByAsc": ascending,
        "selectedColumns": shown,
        "columnOrder": shown,
    }
    tags = client.get_experiment(experiment_id).tags
    if tags.get(VIEW_TAG_PREFIX + key) != json.dumps(state):
        client.set_experiment_tag(experiment_id, VIEW_TAG_PREFIX + key, json.dumps(state))
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={key}"


def _metric_key(name: str) -> str:
    """The UI's canonical column key of a metric."""
    return f"metrics.`{name}`"


def run_links(
    client: MlflowClient, run_id: str, ui_url: str, sort_by: str, ascending: bool,
    columns: list[str],
) -> dict[str, str]:  # fmt: skip
    """{"run": its name, "runs": the experiment's runs table, "view": the run's page}."""
    info = client.get_run(run_id).info
    base = redact(ui_base(client.tracking_uri, ui_url))
    table = runs_table_url(client, base, info.experiment_id, sort_by, ascending, columns)
    return {"run": info.run_name, "runs": table, "view": run_url(base, info.experiment_id, run_id)}
