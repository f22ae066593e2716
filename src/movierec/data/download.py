"""Fetch MovieLens archives into the cache folder, atomically and verified.

An archive is written to a temporary file beside its final name and renamed only after
its zip structure, CRCs and expected members check out, so an interrupted or corrupt
transfer never leaves a file that a later run trusts. A checksum sidecar
(`<archive>.sha256.json`) records the verified archive's SHA-256, size and mtime; it keys
the processed-data cache and lets later runs skip re-verifying an unchanged archive.
A transfer, from a mirror folder or over HTTP, shows a progress bar in bytes on stderr when
stderr is a terminal (or when asked with `progress=True`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from movierec.errors import DownloadError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
SIDECAR_SUFFIX = ".sha256.json"


def ensure_archive(
    archive: str,
    required_members: Iterable[str],
    cache_dir: str | os.PathLike,
    *,
    mirror: str | None = None,
    url: str | None = None,
    sha256: str | None = None,
    attempts: int = 3,
    timeout_s: float = 60.0,
    progress: bool | None = None,
) -> Path:
    """Return the path of a verified copy of `archive` in `cache_dir`, fetching it if needed.

    Args:
        archive: zip file name, e.g. "ml-100k.zip".
        required_members: paths inside the zip that must exist.
        cache_dir: folder holding downloaded archives.
        mirror: folder, `file://` or `http(s)://` base that holds the same zip names;
            takes precedence over `url`.
        url: full URL of the archive (GroupLens by default).
        sha256: expected SHA-256 hex digest, checked when given.
        attempts: downloads to try before giving up on a corrupt or interrupted transfer.
        progress: show a progress bar while fetching; None: only when stderr is a terminal.
    """
    members = tuple(required_members)
    cache = Path(cache_dir)
    dest = cache / archive
    if dest.exists() and _cached_copy_holds(dest, members, sha256):
        return dest
    source = _resolve_source(archive, mirror, url)
    cache.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(1, attempts + 1):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{archive}.", suffix=".part", dir=cache)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _copy_source(source, out, timeout_s, _bar(f"fetch {archive}", progress))
                out.flush()
                os.fsync(out.fileno())
            digest = verify_zip(tmp, members)
            _check_expected_sha(tmp, digest, sha256)
            Path(tmp).replace(dest)
            _write_sidecar(dest, digest)
            log.info("fetched %s from %s", dest, source)
            return dest
        except (DownloadError, OSError, http.client.HTTPException) as err:
            last_error = err
            log.warning("attempt %d/%d to fetch %s failed: %s", attempt, attempts, source, err)
            if isinstance(err, _Missing):
                break
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(f"could not fetch a valid {archive} from {source}: {last_error}")


def _cached_copy_holds(dest: Path, members: tuple[str, ...], sha256: str | None) -> bool:
    """Whether the cached archive verifies (its sidecar digest, else the zip itself, then
    `sha256` when given); a copy that fails verification is removed, to be fetched again."""
    if _sidecar_matches(dest):
        _check_expected_sha(dest, archive_sha256(dest), sha256)
        return True
    try:
        digest = verify_zip(dest, members)
        _check_expected_sha(dest, digest, sha256)
        _write_sidecar(dest, digest)
        return True
    except DownloadError as err:
        log.warning("cached %s failed verification (%s); fetching it again", dest, err)
        dest.unlink()
        return False


def verify_zip(path: Path, required_members: Iterable[str]) -> str:
    """Check that `path` is a complete zip with every required member; return its SHA-256.

    Raises `DownloadError` naming the file and what is wrong.
    """
    if not zipfile.is_zipfile(path):
        raise DownloadError(f"{path} is not a zip archive (truncated or not a zip)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [m for m in required_members if m not in names]
            if missing:
                raise DownloadError(f"{path} lacks expected file(s): {', '.join(missing)}")
            bad = zf.testzip()
            if bad is not None:
                raise DownloadError(f"{path}: member {bad} fails its CRC check")
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise DownloadError(f"{path} is a corrupt zip archive: {err}") from err
    return archive_sha256(path)


def archive_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file; read from the sidecar when it is still current."""
    sidecar = _read_sidecar(path)
    if sidecar is not None:
        return sidecar["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class _Missing(DownloadError):
    """The source definitely does not have the archive: retrying will not help."""


def _resolve_source(archive: str, mirror: str | None, url: str | None) -> str:
    if mirror:
        if "://" in mirror:
            return mirror.rstrip("/") + "/" + archive
        return str(Path(mirror).expanduser() / archive)
    if url:
        return url
    raise DownloadError(f"no mirror or URL configured for {archive}")


def _bar(label: str, progress: bool | None) -> dict:
    """tqdm settings of a transfer's progress bar (tqdm hides it off a terminal for None)."""
    return {"desc": label, "disable": None if progress is None else not progress}


def _copy_source(source: str, out: BinaryIO, timeout_s: float, bar: dict) -> None:
    """Copy `source` into `out`, counting the bytes on a tqdm bar made with `bar`."""
    if "://" not in source:
        path = Path(source)
        if not path.is_file():
            raise _Missing(f"mirror file {path} does not exist")
        with (
            path.open("rb") as src,
            tqdm.wrapattr(out, "write", total=path.stat().st_size, **bar) as sink,
        ):
            shutil.copyfileobj(src, sink, CHUNK_BYTES)
        return
    try:
        with urllib.request.urlopen(source, timeout=timeout_s) as response:
            expected = response.headers.get("Content-Length")
            # A malformed Content-Length is ignored (http.client then reads to EOF); the
            # zip check still catches a short body.
            total = int(expected) if expected is not None and expected.strip().isdigit() else None
            received = 0
            with tqdm.wrapattr(out, "write", total=total, **bar) as sink:
                while chunk := response.read(CHUNK_BYTES):
                    sink.write(chunk)
                    received += len(chunk)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            raise _Missing(f"{source} answered 404 Not Found") from err
        raise DownloadError(f"{source} answered HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise DownloadError(f"cannot reach {source}: {err.reason}") from err
    if total is not None and received != total:
        raise DownloadError(f"transfer interrupted: got {received} of {expected} bytes")


def _check_expected_sha(path: Path, digest: str, expected: str | None) -> None:
    if expected and digest.lower() != expected.lower():
        raise DownloadError(f"{path} has SHA-256 {digest}, expected {expected} (data.sha256)")


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _read_sidecar(path: Path) -> dict | None:
    sidecar = _sidecar_path(path)
    try:
        record = json.loads(sidecar.read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns:
        return record
    return None


def _sidecar_matches(path: Path) -> bool:
    return _read_sidecar(path) is not None


def _write_sidecar(path: Path, digest: str) -> None:
    stat = path.stat()
    record = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tmp = _sidecar_path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    Path(tmp).replace(_sidecar_path(path))
