"""Serve a trained model over HTTP (`mlflow models serve`, from this environment).

python scripts/serve.py model=<MLflow run id | runs:/<id>/model | models:/<name>@champion>
    [host=127.0.0.1] [port=5001] [workers=2]
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    from movierec.cli import run_reporting_user_errors
    from movierec.tasks.serve import serve

    run_reporting_user_errors(lambda: serve(cfg))


if __name__ == "__main__":
    main()
