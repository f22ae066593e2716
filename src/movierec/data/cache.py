"""Processed-data cache: parse and validate once, reload in a fraction of a second.

An entry is a folder `<cache_dir>/processed/<dataset>-<key>/` in `RatingsData`'s on-disk
form. The key hashes the dataset name, the source checksum and every preprocessing
setting, so changing any of them builds a new entry. Entries are written into a temporary
folder and renamed into place, so a failed build leaves nothing behind. A build holds
an exclusive lock on `<cache_dir>/locks/<entry>.lock` (released by the kernel when its
process dies): a second build of the same entry waits and then uses the first one's, and
whoever takes the lock removes the staging folders of builds that were killed mid-way
(no live build holds one without the lock).

Either engine builds an entry: pandas (`preprocess`) or Spark (`spark`), which writes the
same files; this module picks one, and is the only one to import the optional Spark engine.

Integrity: a finished entry records the size and SHA-256 of each of its files in
`meta.json` (`files`). Every use checks them; an entry that does not match (a file cut
short, edited or missing) or does not load is moved aside and rebuilt, with a warning
that says why, instead of failing every later run.
The engine is part of the key: choosing `data.engine=spark` runs Spark rather than reusing
what pandas built, so the engines' agreement is tested (tests/test_spark.py), never
assumed by the cache. pandas keys are unchanged from before engines existed, so existing
entries stay valid.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from movierec.data import preprocess
from movierec.data.integrity import discard, file_record, record_mismatch
from movierec.data.processed import FILES_KEY, META_FILE, RatingsData
from movierec.data.sources import DataSettings, FetchedSource, fetch_source, has_remote_ratings

log = logging.getLogger(__name__)

#: what reading a damaged Parquet or JSON file raises (pyarrow's errors are OSError/ValueError)
UNREADABLE = (OSError, ValueError, KeyError)

# Bump when the on-disk form or the preprocessing rules change.
CACHE_FORMAT_VERSION = 1


def cache_key(settings: DataSettings, fetched: FetchedSource) -> str:
    """16 hex digits identifying the processed output of these settings and inputs."""
    material = {
        "version": CACHE_FORMAT_VERSION,
        "dataset": settings.name,
        "source": fetched.checksum,
        "missing_movies": settings.missing_movies,
        "rating_scale": list(settings.scale),
        "verify_counts": settings.verify_counts,
    }
    if settings.engine != "pandas":
        material["engine"] = settings.engine
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def prepare_processed(settings: DataSettings) -> Path:
    """Fetch the source and build its processed entry unless it exists; return its folder."""
    fetched = _fetch(settings)
    target = (
        Path(settings.cache_dir) / "processed" / f"{settings.name}-{cache_key(settings, fetched)}"
    )
    if _usable(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(target):
        if _usable(target):  # built by the build this one waited for
            return target
        remove_stale_staging(target)
        if target.exists():  # no entry, yet something there: a rename cannot replace it
            discard(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _build(settings, fetched, staging)
            seal(staging)
            Path(staging).rename(target)
            log.info("cached processed %s in %s", settings.name, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _usable(target: Path) -> bool:
    """Whether the finished entry `target` is there and intact (a damaged one is moved
    aside, with a warning, to be rebuilt)."""
    if not (target / META_FILE).is_file():
        return False
    problem = entry_problem(target)
    if problem is None:
        log.info("using cached %s", target)
        return True
    log.warning("processed entry %s is damaged (%s); rebuilding it", target, problem)
    discard(target)
    return False


@contextlib.contextmanager
def build_lock(target: Path) -> Iterator[None]:
    """Hold the exclusive build lock of the entry `target`, waiting for another build."""
    path = target.parent.parent / "locks" / f"{target.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process building %s", target)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale_staging(target: Path) -> None:
    """Remove the staging folders `.<entry>.<random>/` of builds of `target` that were
    killed mid-way; call with the build lock held (a live build would hold it)."""
    for folder in target.parent.glob(f".{target.name}.*"):
        if folder.is_dir():
            log.info("removing %s, left by an interrupted build", folder)
            shutil.rmtree(folder, ignore_errors=True)


def _fetch(settings: DataSettings) -> FetchedSource:
    """The source's files; for the Spark engine, pyspark is checked before any download."""
    if settings.engine == "spark":
        from movierec.data import spark  # optional dependency

        spark.require_pyspark()
        if has_remote_ratings(settings):
            return spark.fetch_remote_ratings(settings)
    return fetch_source(settings)


def _build(settings: DataSettings, fetched: FetchedSource, staging: Path) -> None:
    """Write the processed entry of `fetched` into the empty folder `staging`."""
    if settings.engine == "spark":
        from movierec.data import spark  # optional dependency

        spark.build_processed(settings, fetched, staging)
    else:
        preprocess.build_processed(settings, fetched, staging)


def load_ratings_data(settings: DataSettings) -> RatingsData:
    """The processed dataset for `settings`, built on first use (and rebuilt once if its
    entry cannot be read)."""
    target = prepare_processed(settings)
    try:
        return RatingsData.load(target)
    except UNREADABLE as err:
        log.warning("processed entry %s cannot be read (%s); rebuilding it", target, err)
        discard(target)
        return RatingsData.load(prepare_processed(settings))


def seal(entry: Path) -> None:
    """Record the size and SHA-256 of every data file of a built entry in its meta.json."""
    meta_path = entry / META_FILE
    meta = json.loads(meta_path.read_text())
    meta[FILES_KEY] = {path.name: file_record(path) for path in sorted(entry.glob("*.parquet"))}
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True))


def entry_problem(entry: Path) -> str | None:
    """What is wrong with a finished entry's files (None: they match meta.json)."""
    try:
        files = json.loads((entry / META_FILE).read_text()).get(FILES_KEY)
    except (OSError, ValueError) as err:
        return f"{META_FILE} unreadable: {err}"
    if files is None:
        return None  # an entry from before integrity records; a failed load rebuilds it
    for name, record in files.items():
        mismatch = record_mismatch(entry / name, record)
        if mismatch:
            return f"{name} {mismatch}"
    return None
