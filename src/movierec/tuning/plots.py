"""The study's pictures for its MLflow parent run, drawn by Optuna's own matplotlib
backend: the optimization history, the parameter importances and a parallel-coordinates
plot of the finished trials."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna

log = logging.getLogger(__name__)

#: the parallel-coordinates plot shows this many parameters, the most important ones
PARALLEL_PARAMS = 5
PLOTS = {
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
}


def study_plots(study: optuna.Study, folder: Path) -> dict[str, str]:
    """Write the PNGs into `folder`; {file name: why it could not be drawn} for the rest
    (e.g. parameter importances need two finished trials)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    folder.mkdir(parents=True, exist_ok=True)
    skipped = {}
    for name, function in PLOTS.items():
        try:
            # the backend is "experimental" in Optuna's terms, and matplotlib warns about
            # axes a few trials leave flat: neither is the user's to act on
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = getattr(optuna_plots, function)(study, **_options(study, function))
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(9, 6)
            figure.tight_layout()
            figure.savefig(folder / name, dpi=110)
            plt.close(figure)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            skipped[name] = " ".join(str(err).split())[:200]
            log.warning("study plot %s not drawn: %s", name, skipped[name])
    return skipped


def _options(study: optuna.Study, function: str) -> dict:
    """The parallel-coordinates plot of the `PARALLEL_PARAMS` most important parameters
    (fANOVA importances need two finished trials; before that, every parameter)."""
    if function != "plot_parallel_coordinate":
        return {}
    try:
        importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}
    return {"params": list(importances)[:PARALLEL_PARAMS]} if importances else {}
