"""Compare MLflow runs of one experiment: a sorted table and a bar plot of test RMSE.

By default the table is sorted by each run's selection metric (`selection`: the best
epoch's value, best first in its direction; one group per metric); `--sort test` sorts by
test RMSE.

python scripts/compare_runs.py --experiment ml_100k
python scripts/compare_runs.py --experiment ml_100k --filter "tags.model = 'sage'" --sort test
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from movierec.cli import run_reporting_user_errors

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--experiment", default="ml_latest_small", help="MLflow experiment name")
    parser.add_argument("--filter", default="", help="MLflow filter, e.g. \"tags.model = 'gcn'\"")
    parser.add_argument(
        "--sort",
        default="val",
        choices=["val", "test"],
        help="val: by the best value of each run's selection metric; test: by test RMSE",
    )
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlruns' / 'mlflow.db'}"),
    )
    parser.add_argument("--plot", type=Path, default=Path("compare_runs.png"))
    parser.add_argument("--all", action="store_true", help="include FAILED/KILLED/RUNNING runs")
    args = parser.parse_args()

    def compare() -> None:
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

    run_reporting_user_errors(compare)


if __name__ == "__main__":
    main()
