"""`TrackedRun`: an MLflow run whose status always ends FINISHED, FAILED or KILLED.

Every param, tag and message it records goes through `movierec.redaction.redact` (no
password of a store URI reaches the tracking store). The run is opened with
`MlflowClient` (no global "active run", so nested CV runs and parallel sweep workers
don't interfere). On leaving the `with` block:
    no exception                    → FINISHED
    KeyboardInterrupt / SystemExit  → KILLED (Lightning turns Ctrl-C/SIGTERM into exit 1)
    StoppedOnPurpose (a pruned trial) → KILLED, tagged `optuna.state=PRUNED`
    any other exception             → FAILED, with the error in the `error` tag
A run killed with SIGKILL cannot close itself: every run is tagged with its host, pid and
the process's start time, and opening a run first ends as KILLED (tagged
`movierec.ended_by`) each RUNNING run of the store that was started on this host by a
process that no longer exists. Runs of other hosts are left alone (this host cannot see
their processes), and so are sweep parent runs, which several workers share. Resuming a
run (same `ckpt_path`) reopens it.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from types import TracebackType

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.time import get_current_time_millis

from movierec.errors import StoppedOnPurpose
from movierec.redaction import redact
from movierec.tracking.store import ensure_experiment, prepare_local_store

log = logging.getLogger(__name__)

RUN_ID_FILE = "mlflow_run_id"
HOST_TAG, PID_TAG, START_TAG = "movierec.host", "movierec.pid", "movierec.pid_start"
MAX_ERROR_TAG = 5000
BATCH = 100  # MLflow's log_batch limit for params and tags


class TrackedRun:
    """Context manager around one MLflow run."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.logger_options: dict = {}  # MLFlowLogger settings of `epoch_logger`

    @classmethod
    def open(
        cls,
        tracking_uri: str,
        experiment_name: str,
        *,
        artifact_root: str | None = None,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        resume_run_id: str | None = None,
    ) -> TrackedRun:
        """Create a run (a child of `parent_run_id` if given) or reopen `resume_run_id`."""
        prepare_local_store(tracking_uri)
        client = MlflowClient(tracking_uri)
        end_orphaned_runs(client)
        if resume_run_id:
            client.update_run(resume_run_id, status="RUNNING")
            for key, value in process_tags().items():
                client.set_tag(resume_run_id, key, value)
            log.info("continuing MLflow run %s", resume_run_id)
            return cls(client, resume_run_id)
        experiment_id = ensure_experiment(client, experiment_name, artifact_root)
        all_tags = {**dict(tags or {}), **process_tags()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        all_tags = {key: redact(str(value)) for key, value in all_tags.items()}
        run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        log.info(
            "MLflow run %s in experiment %r (%s)",
            run.info.run_id, experiment_name, redact(tracking_uri),
        )  # fmt: skip
        return cls(client, run.info.run_id)

    @staticmethod
    def find(
        tracking_uri: str, experiment_name: str, tags: dict[str, str],
        artifact_root: str | None = None,
    ) -> str | None:  # fmt: skip
        """Id of a run of the experiment carrying all `tags` (None if there is none)."""
        prepare_local_store(tracking_uri)
        client = MlflowClient(tracking_uri)
        experiment_id = ensure_experiment(client, experiment_name, artifact_root)
        query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
        found = client.search_runs([experiment_id], filter_string=query, max_results=1)
        return found[0].info.run_id if found else None

    @property
    def tracking_uri(self) -> str:
        return self.client.tracking_uri

    def finish(self) -> None:
        """Mark the run FINISHED (a run shared by several processes, e.g. a study's
        parent, that no `with` block closes)."""
        self.client.set_terminated(self.run_id, "FINISHED")

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, StoppedOnPurpose):
            # MLflow has no PRUNED status: the run was stopped on purpose, so KILLED + tag
            status = "KILLED"
            self.client.set_tag(self.run_id, "optuna.state", "PRUNED")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            status = "KILLED"
        else:
            status = "FAILED"
            message = redact(f"{exc_type.__name__}: {exc}")[:MAX_ERROR_TAG]
            self.client.set_tag(self.run_id, "error", message)
        self.client.set_terminated(self.run_id, status=status)
        log.info("MLflow run %s ended %s", self.run_id, status)

    # ------------------------------------------------------------------ logging

    def log_params(self, params: dict[str, str]) -> None:
        """Log params (passwords hidden), skipping keys the run already has (a resumed
        run keeps its own)."""
        existing = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, redact(v)) for k, v in params.items() if k not in existing]
        for start in range(0, len(fresh), BATCH):
            self.client.log_batch(self.run_id, params=fresh[start : start + BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set tags, passwords hidden."""
        items = [RunTag(k, redact(str(v))) for k, v in tags.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, tags=items[start : start + BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        now = get_current_time_millis()
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=items)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def metric_history(self, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(self.run_id, key)]

    def log_dataset(self, name: str, source: str, checksum: str) -> None:
        """The ratings as the run's dataset input (`tracking.lineage.log_dataset`)."""
        from movierec.tracking.lineage import log_dataset, ratings_input

        log_dataset(self.client, self.run_id, ratings_input(name, source, checksum))

    def epoch_logger(self):
        """Lightning's `MLFlowLogger` writing into this run."""
        from pytorch_lightning.loggers import MLFlowLogger

        return MLFlowLogger(
            tracking_uri=self.tracking_uri, run_id=self.run_id, **self.logger_options
        )

    def publish_model(self, model) -> str:
        """Log `model` (a `tracking.tracker.ServableModel`) as the run's pyfunc `model`
        artifact; its model URI."""
        from movierec.tracking.pyfunc_model import log_pyfunc_model

        return log_pyfunc_model(self.run_id, self.tracking_uri, model)

    def links(self, ui_url: str, sort_by: str, ascending: bool, columns: list[str]) -> dict:
        """The run's name and UI links (`tracking.links.run_links`)."""
        from movierec.tracking.links import run_links

        return run_links(self.client, self.run_id, ui_url, sort_by, ascending, columns)

    def register(self, name: str, model_uri: str, **decision) -> dict[str, str]:
        """Register the run's model under `name` and maybe move the alias
        (`tracking.registry.register_model`); the decision tags."""
        from movierec.tracking.registry import register_model

        return register_model(self.client, name, model_uri, self.run_id, **decision)


def process_tags(pid: int | None = None) -> dict[str, str]:
    """Host, pid and the pid's start time (so a reused pid is not taken for the owner)."""
    pid = os.getpid() if pid is None else pid
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), START_TAG: _start_time(pid)}


def end_orphaned_runs(client: MlflowClient) -> list[str]:
    """End as KILLED the store's RUNNING runs whose process on this host is gone; their ids."""
    host = socket.gethostname()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    running = client.search_runs(
        experiments,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        max_results=1000,
    )
    ended = []
    for run in running:
        tags = run.data.tags
        if tags.get("optuna.role") == "study" or not tags.get(PID_TAG, "").isdigit():
            continue
        pid = int(tags[PID_TAG])
        if _start_time(pid) == tags.get(START_TAG):
            continue  # its process is still alive
        client.set_tag(
            run.info.run_id,
            "movierec.ended_by",
            f"pid {pid} on {host} no longer exists (killed, e.g. SIGKILL or out of memory); "
            f"ended as KILLED by pid {os.getpid()}",
        )
        client.set_terminated(run.info.run_id, status="KILLED")
        log.warning("MLflow run %s: its process %d is gone; ended as KILLED", run.info.run_id, pid)
        ended.append(run.info.run_id)
    return ended


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def remember_run_id(output_dir: str | os.PathLike, run_id: str) -> None:
    """Store the run id in the run folder so a resumed training continues the same run."""
    path = Path(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / RUN_ID_FILE).write_text(run_id)


def run_id_for_checkpoint(ckpt_path: str | None) -> str | None:
    """The MLflow run that wrote `ckpt_path` (`<run dir>/checkpoints/x.ckpt`), if recorded."""
    if not ckpt_path:
        return None
    record = Path(ckpt_path).resolve().parent.parent / RUN_ID_FILE
    return record.read_text().strip() if record.is_file() else None
