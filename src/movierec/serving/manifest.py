"""A bundle's manifest: every file it holds, with its size and SHA-256.

    manifest.json   {"format": 1, "files": {"<name>": {"bytes": n, "sha256": "<hex>"}}}

`write_manifest` is the last step of making a bundle, and writes to a temporary name
renamed into place: a bundle with a manifest is whole. `check_manifest` runs at every
load; a bundle without a manifest, without a file the manifest lists (or one it must
list), or with a file of another size or checksum is damaged, and the error names the
file. A damaged cached bundle is then fetched again (`serving.loading`); a damaged source
bundle is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from movierec.data.integrity import file_record, record_mismatch
from movierec.serving.tables import damaged

MANIFEST = "manifest.json"
FORMAT = 1


def write_manifest(directory: Path) -> None:
    """List every file under `directory` (but the manifest) in its manifest.json."""
    files = {
        path.relative_to(directory).as_posix(): file_record(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    partial = directory / f".{MANIFEST}.partial"
    partial.write_text(json.dumps({"format": FORMAT, "files": files}, indent=1, sort_keys=True))
    partial.replace(directory / MANIFEST)


def check_manifest(directory: Path, required: Iterable[str]) -> None:
    """Raise the `damaged` error naming the first file of `directory` that its manifest
    does not list (of `required`), that is missing, or whose size or SHA-256 differs."""
    files = _listed_files(directory / MANIFEST)
    for name in required:
        if name not in files:
            raise damaged(directory / name, ValueError(f"{MANIFEST} does not list it"))
    for name, record in files.items():
        mismatch = record_mismatch(directory / name, record)
        if mismatch:
            raise damaged(directory / name, ValueError(f"it {mismatch}"))


def _listed_files(path: Path) -> dict[str, dict]:
    """The manifest's `files`, each checked to hold a size and a checksum."""
    try:
        files = json.loads(path.read_text())["files"]
        for name, record in files.items():
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"{name!r} is outside the bundle")
            if not (isinstance(record["bytes"], int) and isinstance(record["sha256"], str)):
                raise ValueError(f"{name!r} has no size and checksum")
    except FileNotFoundError:
        raise damaged(path, FileNotFoundError("no such file")) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise damaged(path, err) from None
    return files
