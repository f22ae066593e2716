"""The serve task: `mlflow models serve` for a trained model, from this environment.

MLflow's server starts `uvicorn` by name, so it fails with "return code = 127" unless the
environment's `bin` is on PATH (an unactivated venv); this task puts the interpreter's own
folder first on PATH and then replaces itself with the server (signals reach it directly).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from movierec.errors import ConfigError
from movierec.tracking.store import check_model_exists

SCHEMES = ("runs:/", "models:/", "file:", "s3:", "gs:", "http:", "https:", "mlflow-artifacts:")


def model_uri(model: str) -> str:
    """`runs:/<id>/model` for a bare run id; any MLflow model URI or folder as it is."""
    model = str(model).strip()
    if not model:
        raise ConfigError("model must be set: an MLflow run id, runs:/… or models:/… URI")
    if model.startswith(SCHEMES) or Path(model).exists():
        return model
    return f"runs:/{model}/model"


def serve_command(cfg: DictConfig) -> tuple[list[str], dict[str, str]]:
    """The server's argv and environment (PATH with this interpreter's folder first)."""
    try:
        uri = model_uri(cfg.run_id)
    except MissingMandatoryValue:
        raise ConfigError(
            "model must be set (model= or run_id=): an MLflow run id, runs:/… or models:/… URI"
        ) from None
    workers = int(cfg.workers)
    if workers < 1:
        raise ConfigError(f"workers={workers}: expected ≥ 1")
    env = dict(os.environ)
    # one request scores one user or a small batch: split the cores between the workers,
    # or their torch thread pools fight over them (p99 of a top-10 grew ~10× under load)
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, threads)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if cfg.get("tracking_uri"):
        env["MLFLOW_TRACKING_URI"] = str(cfg.tracking_uri)
    argv = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
        "-h", str(cfg.host), "-p", str(int(cfg.port)), "-w", str(workers),
    ]  # fmt: skip
    return argv, env


def serve(cfg: DictConfig) -> None:
    argv, env = serve_command(cfg)
    if argv[6].startswith(("runs:/", "models:/")):
        check_model_exists(argv[6], env.get("MLFLOW_TRACKING_URI") or str(cfg.tracking_uri))
    print(f"serving {argv[6]} on http://{cfg.host}:{cfg.port}/invocations", flush=True)
    os.execve(argv[0], argv, env)
