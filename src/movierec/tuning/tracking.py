"""The MLflow side of a study: one parent run per study, trials as its children."""

from __future__ import annotations

from pathlib import Path

import optuna
from omegaconf import DictConfig

from movierec.tracking.params import flatten_config
from movierec.tracking.tracker import Run, RunRequest, Tracker
from movierec.training.selection import Selection
from movierec.tuning.plots import study_plots
from movierec.tuning.study import counts


def open_study_run(
    tracker: Tracker | None, config: DictConfig, selection: Selection, study_name: str,
    storage: str,
) -> Run | None:  # fmt: skip
    """Reopen the study's parent run (a resumed or parallel sweep) or create it in
    `tracker` (None: no run)."""
    if tracker is None:
        return None
    found = tracker.find_run({"optuna.study": study_name, "optuna.role": "study"})
    if found:
        return tracker.open_run(RunRequest(None, resume_run_id=found))
    tags = {
        "optuna.study": study_name,
        "optuna.role": "study",
        "optuna.storage": storage,
        **selection.as_tags(),
    }
    run = tracker.open_run(RunRequest(f"optuna-{study_name}", tags))
    run.log_params(flatten_config(config))
    return run


def close_study_run(
    run: Run | None, study: optuna.Study, n_trials: int, selection: Selection,
    plots: Path,
) -> None:  # fmt: skip
    """Draw the study's plots into `plots`; best value (metric `best/<selection metric>`,
    e.g. `best/val_ndcg_at_10`), params (tags) and the plots on the parent; FINISHED once
    the study is."""
    skipped = study_plots(study, plots)
    if run is None:
        return
    best = study.best_trial
    states = {state.name.lower(): n for state, n in counts(study).items()}
    best_key = "best/" + selection.metric.replace("/", "_")
    run.log_metrics({best_key: best.value, **{f"trials/{k}": v for k, v in states.items()}})
    run.set_tags(
        {
            "optuna.best_trial": str(best.number),
            **{f"best.{name}": str(value) for name, value in best.params.items()},
        }
    )
    run.log_artifact(plots, "plots/study")
    run.set_tags({f"plots.skipped.{name}": why for name, why in skipped.items()})
    if states["complete"] + states["pruned"] >= n_trials:
        run.finish()
