"""Processed-data cache: parse and validate once, reload in a fraction of a second.

An entry is a folder `<cache_dir>/processed/<dataset>-<key>/` in `RatingsData`'s on-disk
form. The key hashes the dataset name, the source checksum and every preprocessing
setting, so changing any of them builds a new entry. Entries are written into a temporary
folder and renamed into place, so a failed or interrupted build leaves nothing behind.

Either engine builds an entry: pandas (`preprocess`) or Spark (`spark`), which writes the
same files; this module picks one, and is the only one to import the optional Spark engine.
The engine is part of the key: choosing `data.engine=spark` runs Spark rather than reusing
what pandas built, so the engines' agreement is tested (tests/test_spark.py), never
assumed by the cache. pandas keys are unchanged from before engines existed, so existing
entries stay valid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from movierec.data.preprocess import build_ratings_data
from movierec.data.processed import META_FILE, RatingsData
from movierec.data.sources import DataSettings, FetchedSource, fetch_source, has_remote_ratings

log = logging.getLogger(__name__)

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
    if (target / META_FILE).is_file():
        log.info("using cached %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _build(settings, fetched, staging)
        try:
            Path(staging).rename(target)
        except OSError:
            if not (target / META_FILE).is_file():
                raise
            # Another process finished the same entry first; theirs is identical.
        log.info("cached processed %s in %s", settings.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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
        build_ratings_data(settings, fetched).save(staging)


def load_ratings_data(settings: DataSettings) -> RatingsData:
    """The processed dataset for `settings`, built on first use."""
    return RatingsData.load(prepare_processed(settings))
