"""What a run was trained on, in MLflow's own terms: the ratings as a dataset input (and
its logging, safe against concurrent runs), the split sizes as params, and machine-specific
paths as tags (so the compare view's
"params that differ" are the hyperparameters, not folders).
"""

from __future__ import annotations

from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_DATASET_DIGEST_SIZE

from movierec.tracking.store import store_lock

#: last key segments whose values name places on one machine, not settings of the run
PATH_KEYS = {
    "dirpath", "cache_dir", "mirror", "artifact_location", "tracking_uri", "ratings_path",
    "movies_path", "best_config_dir", "output_dir", "root_dir", "data_dir", "log_dir",
    "mlruns_dir", "storage", "ckpt_path", "export", "default_root_dir",
}  # fmt: skip
PATH_TAG_PREFIX = "path."


def split_machine_paths(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(hyperparameters, path tags): `paths.*` and keys in `PATH_KEYS` become tags
    `path.<key>`; everything else stays a param."""
    kept, paths = {}, {}
    for key, value in params.items():
        if key.startswith("paths.") or key.rsplit(".", 1)[-1] in PATH_KEYS:
            paths[PATH_TAG_PREFIX + key] = value
        else:
            kept[key] = value
    return kept, paths


def ratings_input(name: str, source: str, checksum: str, context: str = "training"):
    """The ratings as an MLflow dataset input: `name`, `source` (the archive or file it
    was read from) and digest = the source's SHA-256 (cut to MLflow's 36 characters; the
    whole checksum is the input's `sha256` tag)."""
    try:
        dataset_source = resolve_dataset_source(source)
    except Exception:  # e.g. "ml-100k.zip:ml-100k/u.data", a member of an archive
        from mlflow.data.code_dataset_source import CodeDatasetSource

        dataset_source = CodeDatasetSource({"source": source})
    dataset = MetaDataset(dataset_source, name=name, digest=checksum[:MAX_DATASET_DIGEST_SIZE])
    tags = [InputTag("mlflow.data.context", context), InputTag("sha256", checksum)]
    return DatasetInput(dataset._to_mlflow_entity(), tags=tags)


def log_dataset(client, run_id: str, dataset) -> None:
    """`log_inputs` of one dataset. MLflow's store looks the dataset up and inserts it if
    missing, with nothing in between: runs starting together on one store race to the
    insert and all but one fail on the (experiment, name, digest) UNIQUE constraint. A
    local sqlite store is serialized by its file lock; on a server, the loser retries
    once and then finds the winner's row."""
    with store_lock(client.tracking_uri):
        try:
            client.log_inputs(run_id, datasets=[dataset])
        except MlflowException as err:
            if "UNIQUE" not in str(err) and "IntegrityError" not in str(err):
                raise
            client.log_inputs(run_id, datasets=[dataset])
