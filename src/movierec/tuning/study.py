"""A study shared by any number of sweep processes, resumable after a crash.

* Storage: any SQLAlchemy URL (sqlite file by default; PostgreSQL/MySQL for many hosts).
* Resume: trials record heartbeats; a RUNNING trial whose process died stops beating (or
  never beat: killed between `ask` and its first heartbeat), is marked FAIL after
  `grace_period` seconds and re-queued once with the same parameters.
* Parallel: allocating a trial (count, then ask) happens under an exclusive lock, so
  workers never overshoot `n_trials`: a PostgreSQL advisory lock held in the study's own
  database (workers on any number of hosts), else a file lock (workers on one machine;
  on other databases workers on several hosts can overshoot by at most one trial each).
* Distinct trials: each worker that joins the study takes the next worker number (a
  study attribute, counted under the lock) and seeds its sampler with `seed + number`,
  so workers started together (or a worker restarted) do not draw the same parameters;
  TPE also treats the other workers' running trials as if they had scored (constant liar).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
import threading
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from movierec.checks import check_choice
from movierec.errors import ConfigError
from movierec.redaction import redact

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
WORKERS_ATTR = "movierec.workers"  # how many workers have joined the study
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
ALLOCATED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class _Storage(RDBStorage):
    """Optuna's RDBStorage, plus: a RUNNING trial that never recorded a heartbeat is stale.

    Optuna skips such trials when it looks for stale ones, so a worker killed between
    `ask` and its first heartbeat would leave a trial RUNNING forever, holding one of the
    study's `n_trials` slots and making every later worker wait for it. Here it counts as
    stale once it started more than `grace_period` seconds ago. Optuna has no public query
    for "has a heartbeat", so this reads its heartbeat table like Optuna's own check does.
    """

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        from optuna.storages._rdb import models  # Optuna's ORM, as its own stale check uses

        stale = super()._get_stale_trial_ids(study_id)
        grace = self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval
        started_before = datetime.now() - timedelta(seconds=grace)  # datetime_start is local
        session = self.scoped_session()
        try:
            never_beat = [
                row.trial_id
                for row in session.query(models.TrialModel.trial_id)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialModel.state == TrialState.RUNNING)
                .filter(~models.TrialModel.heartbeats.any())
            ]
        finally:
            session.close()
        old = [i for i in never_beat if self.get_trial(i).datetime_start < started_before]
        return [*stale, *(i for i in old if i not in stale)]


def make_sampler(settings: dict, worker: int = 0) -> optuna.samplers.BaseSampler:
    """`{name: tpe|random, seed: int, ...}` → an Optuna sampler seeded `seed + worker`
    (the study's `worker`-th process), TPE with `constant_liar` unless set otherwise."""
    settings = dict(settings)
    name = settings.pop("name", "tpe")
    check_choice("hydra.sweeper.sampler.name", name, SAMPLERS)
    seed = settings.pop("seed", None)
    if seed is not None:
        seed = int(seed) + worker
    if name == "tpe":
        settings.setdefault("constant_liar", True)  # the default from Optuna 5 on
        with warnings.catch_warnings():  # an "experimental" argument in Optuna 4
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, **settings)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(settings: dict) -> optuna.pruners.BasePruner:
    """`{name: median|hyperband|none, ...}` → an Optuna pruner (median by default)."""
    settings = dict(settings)
    name = settings.pop("name", "median")
    check_choice("hydra.sweeper.pruner.name", name, PRUNERS)
    if name == "median":
        return optuna.pruners.MedianPruner(**settings)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(**settings)
    return optuna.pruners.NopPruner()  # "none"


def open_study(
    storage_url: str,
    study_name: str,
    direction: str,
    sampler: dict,
    pruner: dict,
    heartbeat_interval: int,
    grace_period: int,
    metric: str | None = None,
) -> optuna.Study:
    """Create the study or join the existing one of the same name.

    An existing study must have the same `direction` and, when it recorded one, the same
    objective `metric` (user attribute `selection.metric`): trial values of two metrics
    in one study are not comparable.
    """
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"hydra.sweeper.direction={direction!r}; expected minimize or maximize")
    if storage_url.startswith("sqlite:///"):
        Path(storage_url.removeprefix("sqlite:///")).expanduser().parent.mkdir(
            parents=True, exist_ok=True
        )
    # Workers started together would race to create the schema ("table already exists").
    with (
        allocation_lock(storage_url, "schema"),
        warnings.catch_warnings(),  # heartbeats are "experimental" in Optuna's terms
    ):
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = _Storage(
            storage_url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    with allocation_lock(storage_url, study_name):
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            sampler=make_sampler(sampler),
            pruner=make_pruner(pruner),
            direction=direction,
            load_if_exists=True,
        )
        worker = int(study.user_attrs.get(WORKERS_ATTR, 0))
        study.set_user_attr(WORKERS_ATTR, worker + 1)
        study.sampler = make_sampler(sampler, worker)
        _check_objective(study, storage_url, direction, metric)
        return study


def _check_objective(
    study: optuna.Study, storage_url: str, direction: str, metric: str | None
) -> None:
    """Refuse to join a study that optimizes another direction or metric; record the metric
    on a study that has none yet."""
    where = f"Optuna study {study.study_name!r} in {redact(storage_url)}"
    existing = study.direction.name.lower()
    if existing != direction:
        raise ConfigError(
            f"{where} was created to {existing}, this sweep would {direction} "
            "(selection.mode); use another hydra.sweeper.study_name"
        )
    if metric is None:
        return
    recorded = study.user_attrs.get("selection.metric")
    if recorded is None:
        study.set_user_attr("selection.metric", metric)
    elif recorded != metric:
        raise ConfigError(
            f"{where} optimizes {recorded}, this sweep selection.metric={metric}; use another "
            "hydra.sweeper.study_name"
        )


def counts(study: optuna.Study) -> dict[TrialState, int]:
    trials = study.get_trials(deepcopy=False)
    return {state: sum(t.state == state for t in trials) for state in TrialState}


@contextlib.contextmanager
def allocation_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """Exclusive lock for "count trials, then ask": a PostgreSQL advisory lock, a file
    beside a sqlite database, else a file in /tmp."""
    if storage_url.startswith(("postgresql:", "postgresql+")):
        with _advisory_lock(storage_url, study_name):
            yield
        return
    if storage_url.startswith("sqlite:///"):
        path = Path(storage_url.removeprefix("sqlite:///") + f".{study_name}.lock")
    else:
        key = hashlib.sha256(f"{storage_url}|{study_name}".encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"movierec-optuna-{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """`pg_advisory_lock` on a key of the study name, in its own connection: the server
    releases it if the holder's connection dies (a SIGKILLed worker never blocks others)."""
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
    engine = sqlalchemy.create_engine(storage_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.trial.Trial, interval: int) -> Iterator[None]:
    """Record the trial's heartbeat every `interval` s while it runs (ask/tell does not)."""
    stop = threading.Event()
    storage = study._storage

    def beat() -> None:
        while not stop.is_set():
            storage.record_heartbeat(trial._trial_id)
            stop.wait(interval)

    thread = threading.Thread(target=beat, name=f"optuna-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
