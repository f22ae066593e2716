"""Describe a dataset and its split; optionally export the rating graph.

python scripts/inspect_data.py data=ml_100k [split=predefined] [export=graph.graphml]
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="inspect_data")
def main(cfg: DictConfig) -> None:
    from movierec.cli import run_reporting_user_errors
    from movierec.tasks.inspect_data import inspect_data

    run_reporting_user_errors(lambda: inspect_data(cfg))


if __name__ == "__main__":
    main()
