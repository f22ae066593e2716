"""No password of a store URI in what the project prints, logs, tags or writes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from movierec.redaction import redact, redact_files, redact_log_records
from movierec.tracking.lifecycle import TrackedRun
from tests.helpers.stores import tracked_uri

SECRET = "pw-4c1d9e"
#: no password: left as it is
PLAIN = "http://127.0.0.1:5000 sqlite:////tmp/m.db user@host a=b"
URI = f"postgresql+psycopg://movierec:{SECRET}@db.example:5432/mlflow"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (URI, "postgresql+psycopg://movierec:***@db.example:5432/mlflow"),
        (f"study 's' in mysql://u:{SECRET}@h/db.", "study 's' in mysql://u:***@h/db."),
        (f"x=postgresql://u:p@{SECRET}@h/db", "x=postgresql://u:***@h/db"),  # an unquoted @
        (f"postgresql://h/db?user=u&password={SECRET}&a=1", "postgresql://h/db?user=u&password=***&a=1"),
        (PLAIN, PLAIN),
    ],
)  # fmt: skip
def test_redact_hides_passwords_and_keeps_the_rest(text: str, shown: str):
    assert redact(text) == shown


def test_tracked_run_params_tags_and_error_hold_no_password(tmp_path: Path):
    uri = tracked_uri(tmp_path)
    run = TrackedRun.open(uri, "e", tags={"optuna.storage": URI})
    run.log_params({"logger.mlflow.tracking_uri": URI})
    run.set_tags({"path.logger.mlflow.tracking_uri": URI})
    with pytest.raises(RuntimeError), run:
        raise RuntimeError(f"cannot reach {URI}")
    data = MlflowClient(uri).get_run(run.run_id).data
    recorded = [*data.params.values(), *data.tags.values()]
    assert not [value for value in recorded if SECRET in value]
    assert data.params["logger.mlflow.tracking_uri"] == redact(URI)
    assert redact(URI) in data.tags["error"]


def test_log_records_and_written_files_are_redacted(tmp_path: Path, caplog):
    redact_log_records()
    redact_log_records()  # twice is once
    with caplog.at_level(logging.INFO):
        logging.getLogger("movierec.test").info("study %r in %s", "s", URI)
    assert caplog.messages == [f"study 's' in {redact(URI)}"]
    hydra_yaml = tmp_path / "hydra.yaml"
    hydra_yaml.write_text(f"sweeper:\n  storage: {URI}\n")
    redact_files([hydra_yaml, tmp_path / "missing.yaml"])
    assert hydra_yaml.read_text() == f"sweeper:\n  storage: {redact(URI)}\n"
