"""Structured config of the sweeper, registered as `hydra/sweeper: movierec_optuna`.

No `from __future__ import annotations`: OmegaConf reads these annotations at runtime, and
Hydra loads plugin modules in a way that string annotations cannot be resolved from.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class MovierecOptunaSweeperConf:
    _target_: str = "hydra_plugins.movierec_optuna_sweeper.sweeper.MovierecOptunaSweeper"
    study_name: str = "movierec"
    storage: str = "sqlite:///mlruns/optuna.db"
    # the study's direction follows selection.mode (min → minimize, max → maximize); set
    # here it must agree with it
    direction: str | None = None
    n_trials: int = 20
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": 0})
    pruner: dict[str, Any] = field(
        default_factory=lambda: {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 10}
    )
    # search space in Hydra's sweep syntax: {"model.lr": "tag(log, interval(1e-4, 1e-1))"};
    # a key set to null leaves the space (`hydra.sweeper.params={model.net.aggr:null}`):
    # Hydra merges a dict override into the shipped space and refuses `~` deletion here
    params: dict[str, str | None] = field(default_factory=dict)
    heartbeat_interval: int = 10  # seconds between a running trial's heartbeats
    grace_period: int = 30  # seconds without a heartbeat before a trial counts as dead
    max_failures: int = 5  # consecutive failed trials before the sweep gives up
    # write the best trial as conf/experiment/tuned/<study_name>.yaml (null: don't)
    best_config_dir: str | None = "conf/experiment/tuned"


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="movierec_optuna",
    node=MovierecOptunaSweeperConf,
    provider="movierec",
)
