"""Hyperparameter search with Optuna: search spaces, shared studies, pruning, best configs."""
