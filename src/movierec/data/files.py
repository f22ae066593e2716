"""Opening input files as byte streams: plain paths, zip members, and `::` files as tabs.

Readers stream a file through pyarrow's CSV reader instead of holding its bytes: a path
is opened by pyarrow itself, a zip member is inflated block by block, and a `::`-separated
file (ml-1m, ml-10m) is transcoded block by block to tab-separated text, since pyarrow only
splits on one character.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from movierec.errors import DataError

BLOCK_BYTES = 1 << 20
WHITESPACE = b" \t\n\r\x0b\x0c"


@dataclass(frozen=True)
class FileRef:
    """A readable file and the name errors show for it (a path or `archive.zip:member`).

    `path` is set for a plain file, which pyarrow then opens and reads without Python.
    """

    label: str
    opener: Callable[[], BinaryIO]
    path: Path | None = None

    @classmethod
    def from_path(cls, path: str | Path) -> FileRef:
        path = Path(path)
        return cls(str(path), lambda: path.open("rb"), path)

    @classmethod
    def from_zip(cls, archive: Path, member: str) -> FileRef:
        def opener() -> BinaryIO:
            zf = zipfile.ZipFile(archive)
            try:
                return _ClosingMember(zf.open(member), zf)
            except KeyError:
                zf.close()
                raise FileNotFoundError(member) from None

        return cls(f"{archive.name}:{member}", opener)

    def open(self) -> BinaryIO:
        """A fresh binary stream from the file's start; `DataError` if there is no file."""
        try:
            return self.opener()
        except FileNotFoundError as err:
            raise DataError(f"{self.label}: file not found") from err

    def read_bytes(self) -> bytes:
        """The whole file (for the small side files only)."""
        with self.open() as f:
            return f.read()

    def first_line(self) -> bytes:
        """The file's first line, with its line ending (b"" for an empty file)."""
        with self.open() as f:
            return f.readline()

    def is_blank(self) -> bool:
        """True if the file holds only ASCII whitespace (reads up to its first other byte)."""
        with self.open() as f:
            while block := f.read(BLOCK_BYTES):
                if block.strip(WHITESPACE):
                    return False
        return True

    def source(self, delimiter: str) -> tuple[str | BinaryIO, str]:
        """What pyarrow's CSV reader should read, and the one-character delimiter to use.

        A plain file with a one-character delimiter is its path (pyarrow reads it with its
        own threads); "::" becomes "\\t" through `DoubleColonAsTab`.
        """
        if delimiter == "::":
            # pyarrow only splits on one character; no MovieLens field contains a tab.
            return DoubleColonAsTab(self.open()), "\t"
        if self.path is not None:
            if not self.path.is_file():
                raise DataError(f"{self.label}: file not found")
            return str(self.path), delimiter
        return self.open(), delimiter


class _ClosingMember(io.BufferedReader):
    """A zip member stream that also closes its `ZipFile` when closed."""

    def __init__(self, raw: BinaryIO, zf: zipfile.ZipFile) -> None:
        super().__init__(raw, buffer_size=BLOCK_BYTES)  # type: ignore[arg-type]
        self._zf = zf

    def close(self) -> None:
        super().close()
        self._zf.close()


class DoubleColonAsTab(io.RawIOBase):
    """`inner` with every "::" replaced by a tab, read block by block.

    The result equals `inner.read().replace(b"::", b"\\t")`: a block that ends in an odd
    run of colons keeps its last colon for the next block, where it may pair.
    """

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self._carry = b""  # a held-back colon
        self._pending = memoryview(b"")  # transcoded bytes not yet returned

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            block = self._inner.read(BLOCK_BYTES)
            if not block:
                tail, self._carry = self._carry, b""
                if not tail:
                    return 0
                self._pending = memoryview(tail)
                break
            block = self._carry + block
            run = len(block) - len(block.rstrip(b":"))
            self._carry = b":" if run % 2 else b""
            if run % 2:
                block = block[:-1]
            self._pending = memoryview(block.replace(b"::", b"\t"))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._inner.close()
        super().close()
