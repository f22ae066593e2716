"""Train a rating model.

python scripts/train.py [data=ml_100k] [model=gcn] [split=predefined split.fold=all] ...
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from movierec.cli import run_reporting_user_errors
    from movierec.tasks.train import train

    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return train(cfg)  # the sweeper records a failed job and goes on with the next
    return run_reporting_user_errors(lambda: train(cfg))


if __name__ == "__main__":
    main()
