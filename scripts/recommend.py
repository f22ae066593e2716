"""Top-K movies for a user of a trained model.

python scripts/recommend.py run_id=<MLflow run id | bundle | checkpoint> user_id=1 [k=10]
    [exclude_rated=false] [genre=Comedy] [fallback=popular] [json=recs.json]
python scripts/recommend.py run_id=<id> ratings=[[1,5],[260,4.5]]      # a new user
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="recommend")
def main(cfg: DictConfig) -> None:
    from movierec.cli import run_reporting_user_errors
    from movierec.tasks.recommend import recommend

    run_reporting_user_errors(lambda: recommend(cfg))


if __name__ == "__main__":
    main()
