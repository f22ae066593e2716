"""Hydra sweeper plugin `hydra/sweeper=movierec_optuna` (Optuna ask/tell, current Optuna).

The released hydra-optuna-sweeper (1.3.0) pins optuna<3 and its sqlite storage breaks
under SQLAlchemy 2; upstream has merged Optuna 4 support but not released it. This thin
plugin can be dropped for the upstream one once a release supports Optuna ≥ 4 with
heartbeats, pruning and shared studies.
"""
