"""Compose the real `train.yaml` (the packaged configs) for tests, every path in a temp folder."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from tests.conftest import PROJECT_ROOT
from tests.helpers.stores import STORE_NAME, seed_mlflow_store

CONFIG_DIR = str(PROJECT_ROOT / "src" / "movierec" / "conf")
#: no progress bar (its refresh spams CI logs)
QUIET = ["callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]
#: QUIET, no logger and no model summary: the fastest way through a training
FAST = ["logger=none", *QUIET, "trainer.enable_model_summary=false"]
# selection on val/rmse, as a rating model does (sage's default picks val/ndcg_at_10)
RMSE_SELECTION = ["ranking.validate=false", "selection.metric=val/rmse", "selection.mode=min"]
TINY_DATA = [
    "data=synthetic",
    "data.synthetic.n_users=40",
    "data.synthetic.n_movies=60",
    "data.synthetic.n_ratings=1200",
]


def compose_train(tmp_path: Path, overrides: list[str], config_name: str = "train") -> DictConfig:
    """The composed config, as `scripts/train.py` would see it, writing under `tmp_path`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = str(PROJECT_ROOT)
        cfg.paths.data_dir = str(tmp_path / "data")
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.mlruns_dir = str(tmp_path / "mlruns")
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    default_store = tmp_path / "mlruns" / STORE_NAME  # where a training logs unless told
    if OmegaConf.select(cfg, "logger.mlflow.tracking_uri") == f"sqlite:///{default_store}":
        seed_mlflow_store(default_store.parent)
    return cfg
