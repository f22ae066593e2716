"""The Optuna sweep behind `sweeper.MovierecOptunaSweeper`: each trial = ask Optuna, launch
one training, tell the result.

Kept out of `sweeper.py` because Hydra imports every module of `hydra_plugins` (except
those named `_…`) when any app starts: this module imports Optuna, MLflow and the training
stack, which `recommend`, `inspect` and `serve` must not pay for.

The objective is `selection` (conf/train.yaml): a trial's value is its best epoch's
`selection.metric`, and the study minimizes or maximizes it as `selection.mode` says.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from movierec.errors import ConfigError
from movierec.redaction import redact
from movierec.tracking.preflight import check_database
from movierec.tracking.recorder import tracker_for
from movierec.training.selection import Selection, SelectionError
from movierec.tuning.best_config import experiment_yaml, write_experiment
from movierec.tuning.search_space import parse_search_space
from movierec.tuning.study import (
    ALLOCATED,
    COUNTED,
    allocation_lock,
    counts,
    heartbeat,
    open_study,
)
from movierec.tuning.summary import best_trial, sweep_summary
from movierec.tuning.tracking import close_study_run, open_study_run

log = logging.getLogger(__name__)


class Search:
    """One sweep of a set-up `MovierecOptunaSweeper` (its settings, config and launcher)."""

    def __init__(self, sweeper: Any) -> None:
        self.settings = sweeper.settings
        self.hydra_context = sweeper.hydra_context
        self.config = sweeper.config
        self.launcher = sweeper.launcher

    def sweep(self, arguments: list[str]) -> Any:
        return self._sweep(arguments)

    def _sweep(self, arguments: list[str]) -> Any:
        s = self.settings
        fixed, extra_space = _split_arguments(arguments)
        job_config = self.hydra_context.config_loader.load_sweep_config(self.config, fixed)
        # the whole search space is checked before the first trial
        space = parse_search_space({**s["params"], **extra_space}, job_config)
        if not isinstance(s["n_trials"], int) or s["n_trials"] < 1:
            raise ConfigError(f"hydra.sweeper.n_trials={s['n_trials']!r}: expected an integer ≥ 1")
        self.selection = Selection.from_cfg(job_config)
        if not s["storage"].startswith("sqlite:"):
            check_database(s["storage"], "hydra.sweeper.storage")
        tracker = tracker_for(job_config)  # its store checked before the study opens
        study = open_study(
            s["storage"], s["study_name"], _direction(s["direction"], self.selection),
            s["sampler"], s["pruner"], s["heartbeat_interval"], s["grace_period"],
            metric=self.selection.metric,
        )  # fmt: skip
        with allocation_lock(s["storage"], s["study_name"]):
            parent = open_study_run(
                tracker, job_config, self.selection, s["study_name"], s["storage"]
            )
        log.info(
            "study %r in %s: %d trials wanted, %s %s",
            s["study_name"], redact(s["storage"]), s["n_trials"],
            self.selection.optuna_direction, self.selection.metric,
        )  # fmt: skip
        failures = 0
        while True:
            trial = self._allocate(study)
            if trial is None:
                break
            state = self._run_trial(study, trial, fixed, space, parent)
            failures = failures + 1 if state == TrialState.FAIL else 0
            if failures >= s["max_failures"]:
                raise ConfigError(
                    f"{failures} trials in a row failed; see the trials' logs in "
                    f"{self.config.hydra.sweep.dir}"
                )
        best = best_trial(study)
        where: dict[str, str] = {}
        if best is not None:
            plots = Path(self.config.hydra.sweep.dir) / "study"
            close_study_run(parent, study, s["n_trials"], self.selection, plots)
            where["plots"] = str(plots)
            if tuned := self._write_best(study, fixed):
                where["tuned config"] = f"{tuned} (experiment=tuned/{s['study_name']})"
        if parent is not None:
            where["MLflow study run"] = parent.run_id
        print("\n".join(sweep_summary(study, self.selection, list(space), where)), flush=True)
        return best

    def _allocate(self, study: optuna.Study) -> optuna.trial.Trial | None:
        """Ask for the next trial, or None when the study has all it needs."""
        n_trials = self.settings["n_trials"]
        while True:
            with allocation_lock(self.settings["storage"], self.settings["study_name"]):
                with warnings.catch_warnings():  # experimental in Optuna, stable in use
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)  # dead workers' trials → retried
                now = counts(study)
                done = sum(now[state] for state in COUNTED)
                allocated = sum(now[state] for state in ALLOCATED)
                if done >= n_trials:
                    return None
                if allocated < n_trials or now[TrialState.WAITING]:
                    trial = study.ask()
                    # beat at once: a trial that never beats is only found stale by start time
                    study._storage.record_heartbeat(trial._trial_id)
                    return trial
            # every remaining trial is running elsewhere: wait for it to end or go stale
            time.sleep(min(5, self.settings["heartbeat_interval"]))

    def _run_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.Trial,
        fixed: list[str],
        space: dict,
        parent: Any,
    ) -> TrialState:
        params = {name: _suggest(trial, name, dist) for name, dist in space.items()}
        overrides = [
            *fixed,
            *(f"{name}={_format(value)}" for name, value in params.items()),
            f"sweep.trial={trial.number}",
            f"sweep.study={self.settings['study_name']}",
        ]
        if parent is not None:
            overrides.append(f"sweep.parent_run_id={parent.run_id}")
        log.info("trial %d: %s", trial.number, " ".join(overrides[len(fixed) :]))
        with heartbeat(study, trial, self.settings["heartbeat_interval"]):
            (result,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
        try:
            value = float(result.return_value)
        except optuna.TrialPruned:
            _tell(study, trial, state=TrialState.PRUNED)
            log.info("trial %d pruned", trial.number)
            return TrialState.PRUNED
        except SelectionError as err:
            # refused before training: a selection the run cannot follow fails every trial
            _tell(study, trial, state=TrialState.FAIL)
            if parent is not None:
                parent.client.set_tag(parent.run_id, "error", str(err))
                parent.client.set_terminated(parent.run_id, "FAILED")
            raise
        except Exception as err:  # a failed training fails its trial, not the sweep
            _tell(study, trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s: %s", trial.number, type(err).__name__, err)
            return TrialState.FAIL
        if not _tell(study, trial, value):
            return TrialState.FAIL
        log.info("trial %d: %s = %.5f", trial.number, self.selection.metric, value)
        return TrialState.COMPLETE

    def _write_best(self, study: optuna.Study, fixed: list[str]) -> Path | None:
        folder = self.settings["best_config_dir"]
        best = best_trial(study)
        if not folder or best is None:
            return None
        root = Path(self.config.paths.root_dir) if "paths" in self.config else Path.cwd()
        path = (root / folder / f"{self.settings['study_name']}.yaml").resolve()
        groups = set(self.config.hydra.runtime.choices.keys())
        text = experiment_yaml(
            self.settings["study_name"], self.selection, best.value, best.params, fixed, groups
        )
        return write_experiment(path, text)


def _direction(configured: str | None, selection: Selection) -> str:
    """The study direction: `selection.mode`'s; `hydra.sweeper.direction`, when set, must
    say the same (one source: a study must not minimize what checkpoints maximize)."""
    wanted = selection.optuna_direction
    if configured is not None and configured != wanted:
        raise ConfigError(
            f"hydra.sweeper.direction={configured!r} disagrees with "
            f"selection.mode={selection.mode!r} (which means {wanted}); drop "
            "hydra.sweeper.direction, the direction follows selection.mode"
        )
    return wanted


def _tell(study: optuna.Study, trial: optuna.trial.Trial, value=None, state=None) -> bool:
    """`study.tell`, unless another worker already failed the trial as stale (its heartbeat
    came later than `grace_period`, e.g. on an overloaded host): then its retry, already
    queued, runs it again and this result is dropped. Returns whether the tell happened."""
    current = study._storage.get_trial(trial._trial_id).state
    if current.is_finished():
        log.warning(
            "trial %d was already marked %s by another worker (heartbeat later than "
            "hydra.sweeper.grace_period); its queued retry will run it again",
            trial.number,
            current.name,
        )
        return False
    try:
        study.tell(trial, value, state=state)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
        if not study._storage.get_trial(trial._trial_id).state.is_finished():
            raise
        log.warning("trial %d was finished by another worker meanwhile", trial.number)
        return False
    return True


def _split_arguments(arguments: list[str]) -> tuple[list[str], dict[str, str]]:
    """Command-line overrides → fixed ones and sweep ones (extra search dimensions)."""
    parser = OverridesParser.create()
    fixed: list[str] = []
    space: dict[str, str] = {}
    for override in parser.parse_overrides(arguments):
        if override.is_sweep_override():
            space[override.get_key_element()] = override.input_line.split("=", 1)[1]
        else:
            fixed.append(override.input_line)
    return fixed, space


def _suggest(trial: optuna.trial.Trial, name: str, dist: Any) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_categorical(name, dist.choices)


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)
