"""Optuna sweeps through Hydra multirun, run for real as subprocesses into a temp folder."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from optuna.trial import TrialState

from movierec.errors import ConfigError
from movierec.tuning.study import open_study
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import QUIET, TINY_DATA
from tests.helpers.runs import all_runs
from tests.helpers.sweeps import (
    STUDY,
    parallel_worker_params,
    run_sweep,
    sweep_command,
    sweep_env,
)


def _study(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(
        study_name=STUDY, storage=f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    )


def _states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in study.get_trials()]


def _raw_states(storage: Path) -> list[str]:
    """Trial states read straight from the sqlite file (never creates tables)."""
    if not storage.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{storage}?mode=ro", uri=True)) as db:
            return [row[0] for row in db.execute("SELECT state FROM trials")]
    except sqlite3.Error:
        return []  # the sweeper is still creating the schema


def _running_and_training(storage: Path) -> bool:
    """Whether a RUNNING trial has drawn its parameters and begun training (read-only)."""
    query = (
        "SELECT COUNT(*) FROM trials JOIN trial_intermediate_values USING (trial_id) "
        "WHERE trials.state = 'RUNNING'"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{storage}?mode=ro", uri=True)) as db:
            return db.execute(query).fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _mlflow_runs(tmp_path: Path):
    return all_runs(MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"))


def test_sweep_records_study_mlflow_parent_children_and_best_config(tmp_path: Path):
    done = run_sweep(tmp_path, "hydra.sweeper.n_trials=4", "trainer.max_epochs=3")
    assert done.returncode == 0, done.stderr[-3000:]
    study = _study(tmp_path)
    assert len(study.trials) == 4
    assert all(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in _states(study))
    runs = _mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("optuna.role") == "study"]
    children = [r for r in runs if r.data.tags.get("optuna.study") == STUDY and r not in parents]
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.data.metrics["best/val_rmse"] == pytest.approx(study.best_value)
    assert parent.info.status == "FINISHED"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots/study")}
    assert plots == {f"plots/study/{name}" for name in
                     ("optimization_history.png", "param_importances.png",
                      "parallel_coordinate.png")}  # fmt: skip
    assert sorted(c.info.run_name for c in children) == [
        f"trial-{i} sage synthetic" for i in range(4)
    ]
    for child in children:  # each trial run carries its sampled params
        trial = study.trials[int(child.data.tags["optuna.trial"])]
        assert float(child.data.params["model.lr"]) == pytest.approx(trial.params["model.lr"])
    text = (tmp_path / "tuned" / f"{STUDY}.yaml").read_text()
    best = yaml.safe_load(text)
    assert best["model"]["lr"] == pytest.approx(study.best_params["model.lr"])
    assert {"override /data": "synthetic"} in best["defaults"]
    assert "/experiment/rating_only" in best["defaults"]  # what the sweep started from
    assert not any("hparams_search" in str(d) for d in best["defaults"])
    # how long the trials ran is listed apart, not inherited
    assert "trainer" not in best and "#   " in text and "trainer.max_epochs=3" in text
    # the sweep ends with its trials sorted by value, the best parameters, the plots
    lines = done.stdout.splitlines()
    columns = ["trial", "state", "val/rmse"]
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == columns)
    values = [float(line.split()[2]) for line in lines[header + 1 : header + 5]]
    assert values == sorted(values) and values[0] == pytest.approx(study.best_value, abs=1e-4)
    assert f"best trial {study.best_trial.number}: val/rmse = " in done.stdout
    assert f"  model.lr = {study.best_params['model.lr']:.4g}" in lines
    plots_line = next(line for line in lines if line.startswith("plots: "))
    assert (Path(plots_line.removeprefix("plots: ")) / "parallel_coordinate.png").is_file()


def test_sweep_maximizes_the_selection_metric(tmp_path: Path):
    # selection max(val/ndcg_at_10): the study maximizes, each trial's value is its best
    # epoch's val/ndcg_at_10, and pruning saw that metric every epoch
    done = run_sweep(
        tmp_path, "hydra.sweeper.n_trials=3", "trainer.max_epochs=3", "ranking.validate=true",
        "selection.metric=val/ndcg_at_10", "selection.mode=max",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    study = _study(tmp_path)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["selection.metric"] == "val/ndcg_at_10"
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = {r.data.tags.get("optuna.trial"): r for r in _mlflow_runs(tmp_path)}
    for trial in complete:
        (job,) = (tmp_path / "logs").glob(f"train/multiruns/*/{trial.number}/metrics.json")
        written = json.loads(job.read_text())
        run = runs[str(trial.number)]
        history = {
            m.step: m.value for m in client.get_metric_history(run.info.run_id, "val/ndcg_at_10")
        }
        assert len(history) == 3
        assert trial.value == pytest.approx(written["val/ndcg_at_10"])
        assert trial.value == pytest.approx(max(history.values()))
        assert run.data.metrics["val/ndcg_at_10_best"] == pytest.approx(trial.value)
        assert sorted(trial.intermediate_values.values()) == pytest.approx(sorted(history.values()))
    assert study.best_value == pytest.approx(max(t.value for t in complete))
    (parent,) = [r for r in _mlflow_runs(tmp_path) if r.data.tags.get("optuna.role") == "study"]
    assert parent.data.metrics["best/val_ndcg_at_10"] == pytest.approx(study.best_value)
    assert parent.data.tags["selection.mode"] == "max"
    text = (tmp_path / "tuned" / f"{STUDY}.yaml").read_text()
    assert "val/ndcg_at_10 = " in text.splitlines()[1]
    best = yaml.safe_load(text)
    assert best["selection"] == {"metric": "val/ndcg_at_10", "mode": "max"}
    assert best["ranking"] == {"validate": True}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["selection.mode=up"], "selection.mode='up': expected min or max"),
        (
            ["selection.metric=val/mae", "selection.mode=max", "hydra.sweeper.direction=minimize"],
            "hydra.sweeper.direction='minimize' disagrees with selection.mode='max'",
        ),
        (["selection.metric=val/foo"], "selection.metric='val/foo' is not logged by this run"),
    ],
)
def test_invalid_selection_stops_the_sweep_before_training(tmp_path: Path, entries, message):
    done = run_sweep(tmp_path, "hydra.sweeper.n_trials=3", *entries, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("metrics.json"))
    storage = tmp_path / "mlruns" / "optuna.db"
    states = _raw_states(storage)
    assert states in ([], ["FAIL"])  # at most the one refused trial, never a retry
    assert all(r.info.status == "FAILED" for r in _mlflow_runs(tmp_path))  # no run left open


def test_study_refuses_another_direction_or_metric(tmp_path: Path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    settings = ({"name": "tpe"}, {"name": "none"}, 1, 3)
    open_study(storage, "s", "minimize", *settings, metric="val/rmse")
    assert open_study(storage, "s", "minimize", *settings, metric="val/rmse").direction.name == (
        "MINIMIZE"
    )
    with pytest.raises(ConfigError, match="was created to minimize, this sweep would maximize"):
        open_study(storage, "s", "maximize", *settings, metric="val/ndcg_at_10")
    with pytest.raises(
        ConfigError, match="optimizes val/rmse, this sweep selection.metric=val/mae"
    ):
        open_study(storage, "s", "minimize", *settings, metric="val/mae")


def test_parallel_workers_sample_distinct_parameters(tmp_path: Path):
    # workers seeded alike drew the same parameters: 6 trials covered 3 configurations
    params = parallel_worker_params(f"sqlite:///{tmp_path / 'optuna.db'}", n_trials=6)
    assert len(params) == len(set(params)) == 6


#: model.net of experiment=seed_notebook_sage (which would also switch the data set)
SEED_SAGE = (
    "model.net.hidden=32", "model.net.relations=single", "model.net.combine=last",
    "model.net.id_embeddings=false", "model.net.decoder=mlp", "model.net.decoder_hidden=[32]",
    "model.net.bias=false", "model.net.num_layers=2", "model.scheduler=none",
    "model.weight_decay=0",
)  # fmt: skip


def test_pruned_trials_are_pruned_in_optuna_and_mlflow(tmp_path: Path):
    # one good and one hopeless learning rate; the median pruner stops the hopeless ones.
    # The notebook's SAGE design: the default variant's mean-initialised dot decoder with
    # biases and L2 starts so near its optimum on tiny data that 8 epochs barely separate them
    done = run_sweep(
        tmp_path,
        *SEED_SAGE,
        "hydra.sweeper.n_trials=6",
        "trainer.max_epochs=8",
        "callbacks.early_stopping=null",
        "hydra.sweeper.sampler={name:random,seed:7}",  # draws 0.03, 0.03, 1e-5, 1e-5, 0.03, 0.03
        "hydra.sweeper.pruner={name:median,n_startup_trials:2,n_warmup_steps:1}",
        # the learning rate alone: sage_optuna's other keys are set to null, out of the space
        "hydra.sweeper.params={model.lr:'choice(0.00001,0.03)',"
        + ",".join(f"{key}:null" for key in _shipped_space("sage_optuna") if key != "model.lr")
        + "}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = _study(tmp_path)
    assert {name for t in study.trials for name in t.params} == {"model.lr"}
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, _states(study)
    for trial in pruned:  # stopped early, at an epoch before the last
        assert max(trial.intermediate_values) < 7
    runs = {r.data.tags.get("optuna.trial"): r for r in _mlflow_runs(tmp_path)}
    for trial in pruned:
        run = runs[str(trial.number)]
        assert run.info.status == "KILLED" and run.data.tags["optuna.state"] == "PRUNED"
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in _states(study)) == 6


def _shipped_space(name: str) -> list[str]:
    """The keys of a shipped search space (src/movierec/conf/hparams_search/<name>.yaml)."""
    space = OmegaConf.load(
        PROJECT_ROOT / "src" / "movierec" / "conf" / "hparams_search" / f"{name}.yaml"
    )
    return list(space.hydra.sweeper.params)


def test_killed_sweep_resumes_the_same_study(tmp_path: Path):
    args = ("hydra.sweeper.n_trials=3", "trainer.max_epochs=60", "callbacks.early_stopping=null")
    process = subprocess.Popen(
        sweep_command(tmp_path, *args), env=sweep_env(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    storage = tmp_path / "mlruns" / "optuna.db"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until trial 0 is done and trial 1 is training
        if "COMPLETE" in _raw_states(storage) and _running_and_training(storage):
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # no chance to clean up: the running trial stays RUNNING
    process.wait(timeout=30)
    before = _study(tmp_path)
    assert TrialState.RUNNING in _states(before)
    finished_before = {t.number: t.params for t in before.trials if t.state == TrialState.COMPLETE}
    done = run_sweep(tmp_path, *args, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _study(tmp_path)
    counted = [t for t in after.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 3  # exactly the requested number, none lost
    assert TrialState.FAIL in _states(after)  # the dead trial was marked failed …
    failed = next(t for t in after.trials if t.state == TrialState.FAIL)
    retried = [t for t in counted if t.system_attrs.get("failed_trial") == failed.number]
    assert len(retried) == 1  # … and retried once, with the parameters it had drawn
    assert failed.params and failed.params.items() <= retried[0].params.items()
    for number, params in finished_before.items():  # finished trials were kept, not re-run
        assert after.trials[number].state == TrialState.COMPLETE
        assert after.trials[number].params == params


def test_trial_orphaned_before_its_first_heartbeat_is_failed_and_retried(tmp_path: Path):
    # a worker killed between `ask` and its first heartbeat leaves a RUNNING trial that
    # never beat; the next sweep must fail and replace it instead of waiting for it forever
    storage = f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    orphan = open_study(storage, STUDY, "minimize", {"name": "tpe"}, {"name": "none"}, 1, 3).ask()
    time.sleep(3.5)  # older than the grace period
    done = run_sweep(tmp_path, "hydra.sweeper.n_trials=2", "trainer.max_epochs=2", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    study = _study(tmp_path)
    assert study.trials[orphan.number].state == TrialState.FAIL
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in _states(study)) == 2


def test_two_workers_share_one_study(tmp_path: Path):
    args = ("hydra.sweeper.n_trials=4", "trainer.max_epochs=3")
    workers = [
        subprocess.Popen(
            sweep_command(tmp_path, *args, f"hydra.sweep.dir={tmp_path / f'sweep{i}'}", grace=30),
            env=sweep_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()[-3000:]
    study = _study(tmp_path)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) == 4
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in _states(study)) == 4
    worked = [any((tmp_path / f"sweep{i}").glob("*/metrics.json")) for i in range(2)]
    assert all(worked)  # both processes ran trials
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == 4  # and no two drew the same parameters


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("model.net.hiddn=choice(16,32)", "model.net.hiddn is not a key of the composed config"),
        ("hydra.sweeper.params={model.net.hidden:'choice()'}", "empty choice is not legal"),
        ("hydra.sweeper.params={model.lr:'interval(0.1,0.01)'}", "interval needs low < high"),
    ],
)
def test_invalid_search_space_is_rejected_before_any_trial(tmp_path: Path, entry, message):
    done = run_sweep(tmp_path, "hydra.sweeper.n_trials=2", entry, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in done.stderr
    storage = tmp_path / "mlruns" / "optuna.db"
    assert not storage.exists() or not _study_trials(storage)


def _study_trials(storage: Path) -> list:
    try:
        return _study(storage.parent.parent).trials
    except KeyError:
        return []


def test_plain_grid_multirun_runs_every_combination(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), "-m", *TINY_DATA, *QUIET,
         "model=mf,sage", "seed=1,2", "trainer.max_epochs=2"],
        env=sweep_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _mlflow_runs(tmp_path)
    combos = sorted((r.data.tags["model"], r.data.tags["seed"]) for r in runs)
    assert combos == [("mf", "1"), ("mf", "2"), ("sage", "1"), ("sage", "2")]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_result_of_a_trial_failed_meanwhile_by_another_worker_is_dropped(tmp_path: Path):
    # a worker whose heartbeat came late finds its trial failed (and retried) by another
    # worker: it must drop its result and go on, not crash the sweep
    from hydra_plugins.movierec_optuna_sweeper._search import _tell

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study(storage, "s", "minimize", {"name": "tpe"}, {"name": "none"}, 1, 3)
    late, on_time = study.ask(), study.ask()
    study._storage.set_trial_state_values(late._trial_id, state=TrialState.FAIL)
    assert _tell(study, late, 0.5) is False
    assert _tell(study, on_time, 0.7) is True
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]
