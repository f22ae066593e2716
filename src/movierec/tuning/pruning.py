"""Report each epoch's selection metric to an Optuna trial and stop it when pruned."""

from __future__ import annotations

import optuna
import pytorch_lightning as pl
from omegaconf import OmegaConf

from movierec.errors import StoppedOnPurpose


class TrialPruned(optuna.TrialPruned, StoppedOnPurpose):
    """Optuna's pruned-trial signal, which the tracking layer reads as stopped on purpose."""


class OptunaPruning(pl.Callback):
    """Lightning callback: `trial.report(monitor, epoch)`, raise `TrialPruned` if told to.

    A thin equivalent of optuna-integration's PyTorchLightningPruningCallback, kept here
    because that package tracks the `lightning` namespace and this project uses
    `pytorch_lightning`.
    """

    def __init__(self, trial: optuna.trial.BaseTrial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise TrialPruned(f"pruned at epoch {epoch} with {self.monitor}={float(value):.4f}")


def trial_from_storage(
    storage_url: str, study_name: str, number: int, pruner: dict | None
) -> optuna.trial.Trial:
    """The live trial `number` of a stored study (the sweeper asked for it), judged by the
    same pruner as the sweeper's."""
    from movierec.tuning.study import make_pruner

    study = optuna.load_study(
        study_name=study_name, storage=storage_url, pruner=make_pruner(pruner or {})
    )
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)


def optuna_pruning(sweep, monitor: str) -> OptunaPruning | None:
    """The pruning callback for a sweep trial (`sweep.trial` set by the sweeper); it
    watches `monitor`, the selection metric (the study's direction is its mode)."""
    sweep = sweep or {}
    if sweep.get("trial") is None:
        return None
    from hydra.core.hydra_config import HydraConfig

    settings = HydraConfig.get().sweeper
    trial = trial_from_storage(
        settings.storage,
        settings.study_name,
        int(sweep.trial),
        OmegaConf.to_container(settings.pruner, resolve=True),
    )
    return OptunaPruning(trial, monitor=monitor)
