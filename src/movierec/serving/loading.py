"""From what a user names (`run_id=`) to a loaded `TrainedModel`.

Accepted, in this order:
    a bundle folder            holds manifest.json (e.g. a downloaded `model/artifacts/bundle`)
    a checkpoint file (.ckpt)  the data and split are rebuilt from the run folder's
                               `.hydra/config.yaml` (`<run dir>/checkpoints/x.ckpt`)
    a training run folder      its best checkpoint (`checkpoints/best-*.ckpt`), as above
    models:/<name>@<alias>     a registered model version (models:/movierec-ml_100k-mf@champion)
                               or models:/<name>/<version>, from `tracking_uri`
    an MLflow run id           the bundle of its `model` artifact, from `tracking_uri`
                               (default: $MLFLOW_TRACKING_URI, else the project's store
                               sqlite:///mlruns/mlflow.db under the working directory)

A finished run's bundle is kept after its first download in a local cache
($MOVIEREC_CACHE_DIR, else $XDG_CACHE_HOME/movierec or ~/.cache/movierec, under
`bundles/<store digest>/<run id>`), so later commands for that run start neither MLflow's
client nor a download (about 2 s of the recommend command). A finished run's artifacts do
not change; a run deleted from the store after its first use is still answered from the
cache until the cache folder is removed. Every load checks the bundle against its
manifest (`serving.manifest`): a damaged cache entry is replaced by a fresh download,
renamed into place, so a reader finds a whole entry or none; a damaged bundle from
anywhere else is refused with the file named.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from movierec.data.integrity import discard
from movierec.errors import ConfigError, DataError
from movierec.redaction import redact
from movierec.serving.bundle import CHECKPOINT, TrainedModel
from movierec.serving.manifest import MANIFEST
from movierec.tracking.artifacts import StoreReadError, download, run_status

log = logging.getLogger(__name__)

RUN_CONFIG = Path(".hydra") / "config.yaml"
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
BUNDLE_PATH = "model/artifacts/bundle"


def load_trained_model(run: str, tracking_uri: str | None = None) -> tuple[TrainedModel, str]:
    """The model `run` names, and a short description of it for messages."""
    run = str(run).strip()
    if not run:
        raise ConfigError("run_id must be an MLflow run id, a bundle folder or a checkpoint")
    if run.startswith("models:/"):
        return _from_registry(run, tracking_uri), f"model {run}"
    path = Path(run).expanduser()
    if path.is_dir() and any((path / name).is_file() for name in (MANIFEST, CHECKPOINT)):
        return TrainedModel.load(path, build_network=False), f"bundle {path}"
    if path.is_dir() and (path / "checkpoints").is_dir():
        return _from_checkpoint(_best_checkpoint(path)), f"run folder {path}"
    if path.is_file():
        return _from_checkpoint(path), f"checkpoint {path}"
    if os.sep in run or run.endswith(".ckpt") or path.exists():
        raise DataError(
            f"run_id={run}: no bundle folder (with {MANIFEST}), run folder or checkpoint there"
        )
    return _from_mlflow(run, tracking_uri), f"run {run}"


def _best_checkpoint(run_dir: Path) -> Path:
    candidates = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    if not candidates:
        candidates = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    if not candidates:
        raise DataError(f"run_id={run_dir}: no checkpoint in {run_dir / 'checkpoints'}")
    return candidates[-1]


def _from_checkpoint(checkpoint: Path) -> TrainedModel:
    """Rebuild the training split from the run's composed config and load the weights."""
    from movierec.config import build
    from movierec.training.checkpoints import load_predictor

    config_path = checkpoint.resolve().parent.parent / RUN_CONFIG
    if not config_path.is_file():
        raise DataError(
            f"run_id={checkpoint}: the checkpoint's run folder has no {RUN_CONFIG} to rebuild "
            "its data split from; pass the MLflow run id or a bundle folder instead"
        )
    cfg = OmegaConf.load(config_path)
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    module = load_predictor(checkpoint, key="run_id")
    return TrainedModel.from_split(module, datamodule.split_data, datamodule.data)


def _from_mlflow(run_id: str, tracking_uri: str | None) -> TrainedModel:
    uri = _store_uri(tracking_uri)
    cached = bundle_cache_dir() / hashlib.sha256(uri.encode()).hexdigest()[:16] / run_id
    if cached.exists():
        try:
            return TrainedModel.load(cached, build_network=False)
        except DataError as err:  # damaged since: fetch it again
            log.warning("dropping the damaged cached bundle %s: %s", cached, err)
            discard(cached)

    try:
        status = run_status(uri, run_id)
    except StoreReadError:
        raise DataError(
            f"run_id={run_id} is neither a run in the MLflow store {redact(uri)} nor a bundle "
            "folder or checkpoint (set MLFLOW_TRACKING_URI or tracking_uri= for another store)"
        ) from None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        folder = cached.parent
    except OSError:  # no writable cache: download for this command only
        folder = None
    with tempfile.TemporaryDirectory(prefix=f".{run_id}-", dir=folder) as tmp:
        try:
            bundle = Path(download(f"runs:/{run_id}/{BUNDLE_PATH}", uri, tmp))
        except StoreReadError:
            raise DataError(
                f"run {run_id} has no servable model (artifact {BUNDLE_PATH}); it may have "
                "failed before testing, or been logged without a checkpoint"
            ) from None
        if status != "FINISHED" or folder is None:  # no cache: artifacts may change
            return TrainedModel.load(bundle)  # built now, before the folder goes
        TrainedModel.load(bundle, build_network=False)  # a damaged download is not kept
        _keep(bundle, cached)
    return TrainedModel.load(cached, build_network=False)


def _keep(bundle: Path, cached: Path) -> None:
    """Move the checked `bundle` to `cached`, in one rename: a racing command finds all
    of it or none. An entry already there is kept if whole (a racing command's copy of the
    same artifacts), else renamed aside and removed first."""
    for _ in range(3):
        try:
            bundle.rename(cached)
            return
        except OSError:  # an entry is there (ENOTEMPTY, EEXIST) or the name is a file
            try:
                TrainedModel.load(cached, build_network=False)
                return
            except DataError:
                discard(cached)
    raise DataError(f"cannot keep the downloaded bundle at {cached}: remove that folder")


def bundle_cache_dir() -> Path:
    """Where downloaded bundles of finished runs are kept."""
    if os.environ.get("MOVIEREC_CACHE_DIR"):
        return Path(os.environ["MOVIEREC_CACHE_DIR"]) / "bundles"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "movierec" / "bundles"


def _store_uri(tracking_uri: str | None) -> str:
    """The store's URI, a relative sqlite path made absolute (the cache key of its runs)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def _from_registry(model_uri: str, tracking_uri: str | None) -> TrainedModel:
    """The bundle inside a registered model version's `artifacts/bundle`."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    with tempfile.TemporaryDirectory(prefix="movierec-bundle-") as tmp:
        try:
            folder = download(model_uri, uri, tmp)
        except StoreReadError as err:
            raise DataError(
                f"run_id={model_uri}: no such registered model version in {redact(uri)} ({err}); "
                "list them with `mlflow models` or the UI's Models page"
            ) from None
        return TrainedModel.load(Path(folder) / "artifacts" / "bundle", build_network=False)
