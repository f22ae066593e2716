"""Per-file integrity records, shared by the processed-data cache and model bundles.

A record is {"bytes": size, "sha256": hex digest}; a folder whose files each match their
record is whole. A damaged folder is moved aside (one atomic rename, so no reader sees
half of it) and then deleted.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file, read in blocks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_record(path: Path) -> dict:
    """{"bytes": size, "sha256": digest} of a file."""
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def record_mismatch(path: Path, record: dict) -> str | None:
    """How the file at `path` differs from its `record` (None: it matches), as a phrase
    that follows the file's name: "is missing", "has 10 bytes, 12 recorded", …"""
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if size != record["bytes"]:
        return f"has {size:,} bytes, {record['bytes']:,} recorded"
    if file_sha256(path) != record["sha256"]:
        return "does not match its recorded SHA-256"
    return None


def discard(entry: Path) -> None:
    """Move a damaged folder (or file) aside atomically, then delete it; nothing when
    another process moved it first."""
    aside = entry.with_name(f".damaged-{entry.name}-{uuid.uuid4().hex[:8]}")
    try:
        entry.rename(aside)
    except OSError:
        return
    if aside.is_dir():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)
