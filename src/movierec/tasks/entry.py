"""The command-line programs: console scripts of the installed package (pyproject's
`[project.scripts]`) and what `scripts/*.py` call.

    movierec-train      python scripts/train.py        Hydra app, config train.yaml
    movierec-recommend  python scripts/recommend.py    config recommend.yaml
    movierec-inspect    python scripts/inspect_data.py config inspect_data.yaml
    movierec-serve      python scripts/serve.py        config serve.yaml
    movierec-baseline   python scripts/popular_baseline.py
    movierec-compare    python scripts/compare_runs.py (argparse)
    movierec-report     python scripts/report.py      (argparse)

The configs ship inside the package (`pkg://movierec.conf`); a project folder adds to them
in its own `conf/` (put on Hydra's search path by the `movierec_project_configs` plugin
when it exists, under $MOVIEREC_ROOT or the working directory), or with `--config-dir`.
Each program turns a user error into one `error:` line and exit status 2 (`movierec.cli`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.types import RunMode
from omegaconf import DictConfig

from movierec.redaction import redact_files, redact_log_records

CONFIG_PATH = "pkg://movierec.conf"


def _app(config_name: str, task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    redact_log_records()  # before Hydra logs anything: its own lines name overrides too

    @hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)
    def main(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from movierec.cli import run_reporting_user_errors
        from movierec.console import quiet_console

        quiet_console(bool(cfg.get("verbose", False)))
        _redact_hydra_files(HydraConfig.get())
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return task(cfg)  # the sweeper records a failed job and goes on with the next
        return run_reporting_user_errors(lambda: task(cfg))

    return main


def _redact_hydra_files(hydra_cfg: DictConfig) -> None:
    """Hide store passwords in the config files Hydra has just written (an override such
    as `hydra.sweeper.storage=postgresql://user:password@…` lands in all of them)."""
    files = []
    if hydra_cfg.output_subdir is not None:
        folder = Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir
        files += [folder / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
    if hydra_cfg.mode == RunMode.MULTIRUN:
        files.append(Path(hydra_cfg.sweep.dir) / "multirun.yaml")
    redact_files(files)


def _model_means_run_id() -> None:
    """`model=<run id | models:/…>` on the command line means `run_id=`: Hydra would read
    `model=` as a choice of the `model` config group (the networks), which these programs
    do not use."""
    sys.argv[1:] = [
        "run_id=" + arg.removeprefix("model=") if arg.startswith("model=") else arg
        for arg in sys.argv[1:]
    ]


def _train(cfg: DictConfig) -> float:
    from movierec.tasks.settings_check import check_train_settings

    check_train_settings(cfg)  # before Lightning, PyG and MLflow are even imported
    if cfg.split.get("fold") == "all":
        from movierec.tasks.cross_validation import cross_validate

        return cross_validate(cfg)
    from movierec.tasks.train import train

    return train(cfg)


def _recommend(cfg: DictConfig) -> None:
    from movierec.tasks.recommend import recommend

    recommend(cfg)


def _inspect(cfg: DictConfig) -> None:
    from movierec.tasks.inspect_data import inspect_data

    inspect_data(cfg)


def _serve(cfg: DictConfig) -> None:
    from movierec.tasks.serve import serve

    serve(cfg)


def _baseline(cfg: DictConfig) -> None:
    from movierec.tasks.popular_baseline import evaluate_popularity

    evaluate_popularity(cfg)


def train() -> None:
    _app("train", _train)()


def recommend() -> None:
    _model_means_run_id()
    _app("recommend", _recommend)()


def inspect() -> None:
    _app("inspect_data", _inspect)()


def serve() -> None:
    _model_means_run_id()
    _app("serve", _serve)()


def baseline() -> None:
    _app("popular_baseline", _baseline)()


def compare() -> None:
    """Compare MLflow runs of one experiment: a sorted table and a bar plot of test RMSE.

    Sorted by each run's selection metric (the best epoch's value, best first in its
    direction; one group per metric) unless `--sort test` (test RMSE).
    """
    from movierec.cli import run_reporting_user_errors

    parser = argparse.ArgumentParser(prog="movierec-compare", description=compare.__doc__)
    parser.add_argument("--experiment", default="ml_latest_small", help="MLflow experiment name")
    parser.add_argument("--filter", default="", help="MLflow filter, e.g. \"tags.model = 'gcn'\"")
    parser.add_argument("--sort", default="val", choices=["val", "test"])
    root = Path(os.environ.get("MOVIEREC_ROOT", "."))
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"),
    )
    parser.add_argument("--plot", type=Path, default=Path("compare_runs.png"))
    parser.add_argument("--all", action="store_true", help="include FAILED/KILLED/RUNNING runs")
    args = parser.parse_args()

    def table() -> None:
        import pandas as pd

        from movierec.tracking.comparison import comparison_table, load_runs, plot_comparison

        runs = load_runs(
            args.tracking_uri, args.experiment, args.filter, args.sort, finished_only=not args.all
        )
        if runs.empty:
            print(f"no runs in {args.experiment!r} match {args.filter!r}", file=sys.stderr)
            sys.exit(1)
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(comparison_table(runs).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"plot: {plot_comparison(runs, args.plot)}")

    run_reporting_user_errors(table)


def report() -> None:
    """Compare the finished runs of an MLflow experiment on one HTML page: a leaderboard of
    mean ± std over seeds or folds, each model's significance test against the best one,
    learning curves and top-10 lists; also logged to MLflow as a report run."""
    from movierec.cli import run_reporting_user_errors

    parser = argparse.ArgumentParser(prog="movierec-report", description=report.__doc__)
    parser.add_argument("--experiment", required=True, help="MLflow experiment name")
    parser.add_argument("--filter", default="", help="MLflow filter, e.g. \"tags.seed != '3'\"")
    parser.add_argument("--metric", default=None, help="ranks the models (test/ndcg_at_10)")
    parser.add_argument("--out", type=Path, default=Path("report.html"))
    parser.add_argument("--users", type=int, default=3, help="users shown with their top-10")
    parser.add_argument("--no-log", action="store_true", help="do not log it to MLflow")
    root = Path(os.environ.get("MOVIEREC_ROOT", "."))
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"),
    )
    args = parser.parse_args()

    def write() -> None:
        from movierec.console import quiet_console
        from movierec.tasks.report import write_report

        quiet_console(verbose=False)
        out = write_report(args.tracking_uri, args.experiment, args.filter, args.out,
                           args.metric, args.users, log=not args.no_log)  # fmt: skip
        print(f"report: {out.resolve()}")

    run_reporting_user_errors(write)
