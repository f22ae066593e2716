"""Before a training reads any data: the stores it will write to are there.

The tracking store must answer within `TIMEOUT_S` seconds (MLflow itself retries an
unreachable database for minutes, then prints a long traceback), and a local artifact
location must take a file (else a training finds out only when it logs its checkpoint,
after the whole fit and test). Either fault is one `ConfigError` naming the place, any
password hidden, raised before a run is created.
"""

from __future__ import annotations

import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from omegaconf import DictConfig

from movierec.errors import ConfigError
from movierec.redaction import redact
from movierec.tracking.store import is_local_uri, prepare_local_store, sqlite_path

TIMEOUT_S = 3
#: SQLAlchemy dialects whose drivers take libpq's / MySQL's `connect_timeout`
TIMEOUT_DIALECTS = ("postgresql", "mysql", "mariadb")
DATABASES = (*TIMEOUT_DIALECTS, "mssql", "oracle")


def check_tracking(node: DictConfig) -> None:
    """The MLflow logger `node`'s store answers and its artifact location is writable."""
    key = "logger.mlflow.tracking_uri"
    uri = str(node.tracking_uri)
    if _dialect(uri) in DATABASES:
        check_database(uri, key)
    elif uri.startswith(("http://", "https://")):
        _check_server(uri, key)
    elif sqlite_path(uri) is not None:
        _check_writable(sqlite_path(uri).parent, f"{key}={uri}", key)
    folder = _artifact_folder(uri, str(node.experiment_name), node.get("artifact_location"))
    if folder is not None:
        where = f"the artifact location of experiment {node.experiment_name!r}"
        _check_writable(folder, where, "logger.mlflow.artifact_location")


def check_database(url: str, key: str) -> None:
    """`SELECT 1` on the SQLAlchemy `url` within `TIMEOUT_S` s, else a `ConfigError`."""
    import sqlalchemy

    connect_args = {"connect_timeout": TIMEOUT_S} if _dialect(url) in TIMEOUT_DIALECTS else {}
    try:
        engine = sqlalchemy.create_engine(
            url, poolclass=sqlalchemy.pool.NullPool, connect_args=connect_args
        )
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as err:  # a driver's own errors, a bad URL, a missing driver
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise ConfigError(
            f"{key}={redact(url)}: the database does not answer within {TIMEOUT_S} s "
            f"({redact(reason)}); start it, or give a store that is running"
        ) from None


def _check_server(uri: str, key: str) -> None:
    """Any HTTP answer from `<uri>/health` will do; no answer in `TIMEOUT_S` s will not."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered (an auth proxy, a server without /health)
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise ConfigError(
            f"{key}={redact(uri)}: the tracking server does not answer within {TIMEOUT_S} s "
            f"({reason}); start it (`mlflow server`), or give a server that is running"
        ) from None


def _artifact_folder(uri: str, experiment: str, configured: str | None) -> Path | None:
    """The local folder the experiment's artifacts go to; None for a remote one (a
    tracking server stores them itself)."""
    if not (is_local_uri(uri) or _dialect(uri) in DATABASES):
        return None
    from mlflow.tracking import MlflowClient

    prepare_local_store(uri)  # a new sqlite store is built under its lock, as a run would
    found = MlflowClient(uri).get_experiment_by_name(experiment)
    location = found.artifact_location if found is not None else None
    if location is None and configured and is_local_uri(uri):
        return Path(configured).expanduser() / experiment
    if location is None or ("://" in location and not location.startswith("file:")):
        return None
    return Path(unquote(urlparse(location).path)) if "://" in location else Path(location)


def _dialect(uri: str) -> str:
    """`postgresql` of `postgresql+psycopg://…`."""
    return uri.split(":", 1)[0].split("+", 1)[0]


def _check_writable(folder: Path, what: str, setting: str) -> None:
    """Create `folder` and a probe file in it (removed at once), else a `ConfigError`
    that names `what` failed and the `setting` that moves it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".movierec-probe-"):
            pass
    except OSError as err:
        raise ConfigError(
            f"{what}: cannot write to {folder} ({err.strerror or err}); set {setting} to "
            "a place this process may write"
        ) from None
