"""The popularity baseline's test metrics on a dataset's split (no training).

python scripts/popular_baseline.py data=ml_100k split=predefined split.fold=1
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="popular_baseline")
def main(cfg: DictConfig) -> None:
    from movierec.cli import run_reporting_user_errors
    from movierec.tasks.popular_baseline import evaluate_popularity

    run_reporting_user_errors(lambda: evaluate_popularity(cfg))


if __name__ == "__main__":
    main()
