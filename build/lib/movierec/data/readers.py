"""Parsers for every MovieLens file layout, returning typed pandas tables.

All readers go through pyarrow's multi-threaded CSV reader with explicit column types and
the dialect of `fields`; a file that does not convert is re-read as text only to name the
first bad line and value (the messages are `messages`').

Returned tables use the original GroupLens column names:
    ratings: userId (int64), movieId (int64), rating (float32), [timestamp (int64)]
    movies:  movieId (int64), title (str), genres (str, "|"-separated, "" for none)
    users:   userId (int64), age (float32), gender (str), occupation (str)
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec.data import fields, messages
from movierec.errors import DataError

MOVIES_HEADER = "movieId,title,genres"
ML100K_GENRE_FLAGS = 19


@dataclass(frozen=True)
class FileRef:
    """A readable file and the name errors show for it (a path or `archive.zip:member`)."""

    label: str
    opener: Callable[[], BinaryIO]

    @classmethod
    def from_path(cls, path: str | Path) -> FileRef:
        path = Path(path)
        return cls(str(path), lambda: path.open("rb"))

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

    def read_bytes(self) -> bytes:
        try:
            with self.opener() as f:
                return f.read()
        except FileNotFoundError as err:
            raise DataError(f"{self.label}: file not found") from err


class _ClosingMember(io.BufferedReader):
    """A zip member stream that also closes its `ZipFile` when closed."""

    def __init__(self, raw: BinaryIO, zf: zipfile.ZipFile) -> None:
        super().__init__(raw, buffer_size=1 << 20)  # type: ignore[arg-type]
        self._zf = zf

    def close(self) -> None:
        super().close()
        self._zf.close()


# ----------------------------------------------------------------------------- ratings


def read_ratings_csv(ref: FileRef) -> pd.DataFrame:
    """`userId,movieId,rating[,timestamp]` with a header (ml-latest, 25m, 32m, user files)."""
    data = ref.read_bytes()
    header = fields.header_columns(ref.label, data, expected=fields.RATINGS_HEADER)
    types = fields.ratings_header_types(ref.label, header)
    table = _read_typed(ref, data, names=None, types=types, delimiter=",", header_lines=1)
    return table.to_pandas()


def read_ratings_delimited(ref: FileRef, delimiter: str) -> pd.DataFrame:
    """Header-less `user<sep>movie<sep>rating<sep>timestamp` (ml-100k `u.data`, `.dat`)."""
    data = ref.read_bytes()
    types = dict(fields.RATING_TYPES, timestamp=fields.TIMESTAMP_TYPE)
    table = _read_typed(
        ref,
        data,
        names=fields.DELIMITED_RATING_NAMES,
        types=types,
        delimiter=delimiter,
        header_lines=0,
    )
    return table.to_pandas()


# ----------------------------------------------------------------------------- movies


def read_movies_csv(ref: FileRef) -> pd.DataFrame:
    """`movieId,title,genres` with a header; genres "|"-separated."""
    data = ref.read_bytes()
    header = fields.header_columns(ref.label, data, expected=MOVIES_HEADER)
    missing = [c for c in ("movieId", "title", "genres") if c not in header]
    if missing:
        raise messages.missing_columns_error(ref.label, missing, MOVIES_HEADER, header)
    types = {"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()}
    table = _read_typed(ref, data, names=None, types=types, delimiter=",", header_lines=1)
    return _normalise_movies(table.to_pandas())


def read_movies_dat(ref: FileRef, encoding: str) -> pd.DataFrame:
    """`MovieID::Title::Genres` (ml-1m, ml-10m)."""
    data = ref.read_bytes().decode(encoding).encode("utf-8")
    types = {"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()}
    table = _read_typed(
        ref, data, names=list(types), types=types, delimiter="::", header_lines=0, quoted=False
    )
    return _normalise_movies(table.to_pandas())


def read_movies_ml100k(item_ref: FileRef, genre_ref: FileRef) -> pd.DataFrame:
    """ml-100k `u.item` (pipe-separated, latin-1, 19 genre flags) with names from `u.genre`."""
    genre_names = read_ml100k_genre_names(genre_ref)
    data = item_ref.read_bytes().decode("latin-1").encode("utf-8")
    flag_names = [f"g{i}" for i in range(ML100K_GENRE_FLAGS)]
    names = ["movieId", "title", "release", "video_release", "url", *flag_names]
    types = {"movieId": pa.int64(), "title": pa.string()}
    types.update({name: pa.int8() for name in flag_names})
    table = _read_typed(
        item_ref, data, names=names, types=types, delimiter="|", header_lines=0, quoted=False
    )
    frame = table.to_pandas()
    flags = frame[flag_names].to_numpy(dtype=bool)
    labels = np.asarray(genre_names, dtype=object)
    genres = ["|".join(labels[row]) for row in flags]
    return _normalise_movies(
        pd.DataFrame({"movieId": frame["movieId"], "title": frame["title"], "genres": genres})
    )


def read_ml100k_genre_names(ref: FileRef) -> list[str]:
    text = ref.read_bytes().decode("latin-1")
    pairs = [line.split("|") for line in text.splitlines() if line.strip()]
    try:
        ordered = sorted(pairs, key=lambda p: int(p[1]))
    except (IndexError, ValueError) as err:
        raise DataError(f"{ref.label}: expected lines 'name|index'") from err
    names = [p[0] for p in ordered]
    if len(names) != ML100K_GENRE_FLAGS:
        raise DataError(f"{ref.label}: expected {ML100K_GENRE_FLAGS} genres, found {len(names)}")
    return names


def _normalise_movies(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movieId": frame["movieId"].astype("int64"),
            "title": frame["title"].fillna("").astype(str),
            "genres": frame["genres"].fillna("").astype(str),
        }
    )


# ----------------------------------------------------------------------------- users


def read_users_ml100k(ref: FileRef) -> pd.DataFrame:
    """ml-100k `u.user`: `user id|age|gender|occupation|zip code`."""
    data = ref.read_bytes().decode("latin-1").encode("utf-8")
    names = ["userId", "age", "gender", "occupation", "zip"]
    types = {
        "userId": pa.int64(),
        "age": pa.float32(),
        "gender": pa.string(),
        "occupation": pa.string(),
        "zip": pa.string(),
    }
    table = _read_typed(ref, data, names=names, types=types, delimiter="|", header_lines=0)
    return table.to_pandas()[["userId", "age", "gender", "occupation"]]


def read_users_dat(ref: FileRef) -> pd.DataFrame:
    """ml-1m `users.dat`: `UserID::Gender::Age::Occupation::Zip-code` (age is a bucket)."""
    data = ref.read_bytes()
    names = ["userId", "gender", "age", "occupation", "zip"]
    types = {
        "userId": pa.int64(),
        "gender": pa.string(),
        "age": pa.float32(),
        "occupation": pa.string(),
        "zip": pa.string(),
    }
    table = _read_typed(
        ref, data, names=names, types=types, delimiter="::", header_lines=0, quoted=False
    )
    return table.to_pandas()[["userId", "age", "gender", "occupation"]]


# ----------------------------------------------------------------------------- parsing


def _read_typed(
    ref: FileRef,
    data: bytes,
    *,
    names: list[str] | None,
    types: dict[str, pa.DataType],
    delimiter: str,
    header_lines: int,
    quoted: bool = True,
) -> pa.Table:
    """Parse delimited bytes with explicit column types; errors name the line and value."""
    if not data.strip():
        raise messages.empty_file_error(ref.label)
    data, read_options, parse_options = fields.csv_options(data, names, delimiter, quoted)
    convert_options = fields.convert_options(types)
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    except pa.ArrowInvalid as err:
        _diagnose(ref, data, names, types, read_options, parse_options, header_lines, err)
        raise AssertionError("unreachable") from err
    if table.num_rows == 0:
        raise messages.no_rows_error(ref.label)
    for column in types:
        values = table.column(column)
        invalid = values.is_null()
        if pa.types.is_floating(values.type):
            invalid = pc.or_(invalid, pc.fill_null(pc.is_nan(values), False))
        if pc.any(invalid).as_py():
            row = int(np.flatnonzero(invalid.to_numpy(zero_copy_only=False))[0])
            raise messages.missing_value_error(
                ref.label, row + 1 + header_lines, column, types[column]
            )
    return table


def _diagnose(
    ref: FileRef,
    data: bytes,
    names: list[str] | None,
    types: dict[str, pa.DataType],
    read_options: pacsv.ReadOptions,
    parse_options: pacsv.ParseOptions,
    header_lines: int,
    err: pa.ArrowInvalid,
) -> None:
    """Re-read as text to name the first value that does not convert; always raises."""
    text_types = dict.fromkeys(types, pa.string())
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=pacsv.ConvertOptions(
                column_types=text_types, include_columns=list(types)
            ),
        )
    except pa.ArrowInvalid as structural:
        raise messages.malformed_error(ref.label, structural) from None
    for column, dtype in types.items():
        if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)):
            continue
        raw = table.column(column).to_pandas()
        bad = fields.not_a_number(raw, dtype)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise messages.bad_value_error(
                ref.label, row + 1 + header_lines, column, raw.iloc[row], dtype
            )
    raise messages.cannot_parse_error(ref.label, err) from None
