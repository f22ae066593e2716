"""What the tracker records of a training, as small typed values that the train task reads
once from the config and the data (`tasks.describe`): the recorder sees neither the
config nor the datamodule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from movierec.tracking.params import flatten_settings


@dataclass(frozen=True)
class RunDescription:
    """One training as its runs are named, tagged and compared.

    Attributes:
        model: the model as the user chose it (model=sage), else its network class.
        dataset: `data.name`.
        seed: the run's seed.
        choices: the config-group choices (model=sage, data=ml_100k, experiment=…).
        config: the resolved config (plain containers); `params` flattens it and
            `config_yaml` writes it out.
        root_dir: the code's folder (its git state is tagged).
        output_dir: the run folder (the run id is remembered there for a resume).
        device: the accelerator, as a tag.
        tags: the user's `tags`.
        trial: the sweep trial's number (None outside a sweep).
        study, study_run_id: the sweep's study and its MLflow run, the trial run's parent.
        overrides: the command line's overrides.
    """

    model: str
    dataset: str
    seed: int
    choices: dict[str, str]
    config: dict[str, Any]
    root_dir: str
    output_dir: str
    device: str
    tags: tuple[str, ...] = ()
    trial: int | None = None
    study: str | None = None
    study_run_id: str | None = None
    overrides: tuple[str, ...] = ()

    @property
    def params(self) -> dict[str, str]:
        """The resolved config flattened to dotted keys (`params.flatten_settings`)."""
        return flatten_settings(self.config)

    @property
    def config_yaml(self) -> str:
        """The resolved config as YAML (the recorder hides passwords when it writes it)."""
        return OmegaConf.to_yaml(self.config)

    def trial_tags(self) -> dict[str, str]:
        """The study and trial, as tags of a sweep trial's run (none outside a sweep)."""
        if self.trial is None:
            return {}
        return {"optuna.study": str(self.study), "optuna.trial": str(self.trial)}


@dataclass(frozen=True)
class SplitSummary:
    """The split a run trained on: name, fold, label, part sizes and cold-start counts (as
    tags), and the ratings' source and SHA-256 (the run's dataset input; "" if unknown)."""

    name: str
    fold: int | None
    label: str
    sizes: dict[str, str]
    source: str = ""
    checksum: str = ""


@dataclass(frozen=True)
class RunOutputs:
    """What a finished training leaves on its run besides metrics.

    Attributes:
        users, movies: the ID maps (index → userId / movieId and side columns).
        curves: the metric names plotted as training curves.
        checkpoint: the best checkpoint's path ("" without one).
        per_user: where the per-user test metrics file is written (logged if it exists).
        test_ratings: (true, predicted) test ratings in stars, (N,) each, for the
            predicted-vs-true plot (None: the model predicts no ratings).
        rating_scale: (lowest, highest) stars.
    """

    users: pd.DataFrame
    movies: pd.DataFrame
    curves: tuple[str, ...]
    checkpoint: str
    test_ratings: tuple[np.ndarray, np.ndarray] | None
    per_user: Path
    rating_scale: tuple[float, float]
