"""`MovierecOptunaSweeper`: each trial = ask Optuna, launch one training, tell the result.

The objective is `selection` (conf/train.yaml): a trial's value is its best epoch's
`selection.metric`, and the study minimizes or maximizes it as `selection.mode` says.

Hydra imports this module whenever any app starts (plugin discovery), so it imports only
Hydra and OmegaConf; the sweep itself (Optuna, MLflow, the training stack) lives in
`_search`, imported when a sweep runs.
"""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

# the config store registration must run when Hydra discovers this plugin
from . import config as _registered_config  # noqa: F401


class MovierecOptunaSweeper(Sweeper):
    def __init__(
        self,
        study_name: str,
        storage: str,
        direction: str | None,
        n_trials: int,
        sampler: dict,
        pruner: dict,
        params: dict,
        heartbeat_interval: int,
        grace_period: int,
        max_failures: int,
        best_config_dir: str | None,
    ) -> None:
        self.settings = {
            "study_name": study_name,
            "storage": storage,
            "direction": direction,
            "n_trials": n_trials,
            "sampler": _plain(sampler),
            "pruner": _plain(pruner),
            "params": {k: v for k, v in _plain(params).items() if v is not None},
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "max_failures": max_failures,
            "best_config_dir": best_config_dir,
        }

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from movierec.cli import run_reporting_user_errors

        from ._search import Search

        # a bad search space or setting: one line and exit 2, as for a single run
        return run_reporting_user_errors(lambda: Search(self).sweep(arguments))


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
