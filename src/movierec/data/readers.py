"""Parsers for every MovieLens file layout, returning typed columns or small pandas tables.

All readers go through pyarrow's multi-threaded CSV reader with explicit column types and
the dialect of `fields`, streaming the file (`files`): the ratings are never held as bytes.
A file that does not convert is re-read as text only to name the first bad line and value
(the messages are `messages`').

Returned tables use the original GroupLens column names:
    ratings: {name: (n,) array}: userId (int64), movieId (int64), rating (float32),
             [timestamp (int64)], in file order
    movies:  movieId (int64), title (str), genres (str, "|"-separated, "" for none)
    users:   userId (int64), age (float32), gender (str), occupation (str)
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from movierec.data import fields, messages
from movierec.data.files import FileRef
from movierec.errors import DataError

MOVIES_HEADER = "movieId,title,genres"
ML100K_GENRE_FLAGS = 19

#: ratings columns by name, each (n,) in file order
Columns = dict[str, np.ndarray]

__all__ = ["Columns", "FileRef"]


# ----------------------------------------------------------------------------- ratings


def read_ratings_csv(ref: FileRef) -> Columns:
    """`userId,movieId,rating[,timestamp]` with a header (ml-latest, 25m, 32m, user files)."""
    header = fields.header_columns(ref.label, ref.first_line(), expected=fields.RATINGS_HEADER)
    types = fields.ratings_header_types(ref.label, header)
    return _read_columns(ref, TextLayout(None, types, ",", header_lines=1))


def read_ratings_delimited(ref: FileRef, delimiter: str) -> Columns:
    """Header-less `user<sep>movie<sep>rating<sep>timestamp` (ml-100k `u.data`, `.dat`)."""
    types = dict(fields.RATING_TYPES, timestamp=fields.TIMESTAMP_TYPE)
    names = fields.DELIMITED_RATING_NAMES
    return _read_columns(ref, TextLayout(names, types, delimiter, header_lines=0))


def _read_columns(ref: FileRef, text: TextLayout) -> Columns:
    """`_read_typed` as NumPy columns, one at a time: each column's Arrow chunks are freed,
    and handed back to the system, once copied, so the peak is the table and one column."""
    table = _read_typed(ref, text)  # the only reference: dropping columns frees them
    columns: Columns = {}
    pool = pa.default_memory_pool()
    for name in table.column_names:
        columns[name] = table.column(name).to_numpy()
        table = table.drop_columns([name])
        pool.release_unused()  # the allocator keeps freed chunks for reuse otherwise
    return columns


# ----------------------------------------------------------------------------- movies


def read_movies_csv(ref: FileRef) -> pd.DataFrame:
    """`movieId,title,genres` with a header; genres "|"-separated."""
    header = fields.header_columns(ref.label, ref.first_line(), expected=MOVIES_HEADER)
    missing = [c for c in ("movieId", "title", "genres") if c not in header]
    if missing:
        raise messages.missing_columns_error(ref.label, missing, MOVIES_HEADER, header)
    types = {"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()}
    table = _read_typed(ref, TextLayout(None, types, ",", header_lines=1))
    return _normalise_movies(table.to_pandas())


def read_movies_dat(ref: FileRef, encoding: str) -> pd.DataFrame:
    """`MovieID::Title::Genres` (ml-1m, ml-10m)."""
    utf8 = _in_memory(ref, ref.read_bytes().decode(encoding).encode("utf-8"))
    types = {"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()}
    table = _read_typed(utf8, TextLayout(list(types), types, "::", header_lines=0, quoted=False))
    return _normalise_movies(table.to_pandas())


def read_movies_ml100k(item_ref: FileRef, genre_ref: FileRef) -> pd.DataFrame:
    """ml-100k `u.item` (pipe-separated, latin-1, 19 genre flags) with names from `u.genre`."""
    genre_names = read_ml100k_genre_names(genre_ref)
    utf8 = _in_memory(item_ref, item_ref.read_bytes().decode("latin-1").encode("utf-8"))
    flag_names = [f"g{i}" for i in range(ML100K_GENRE_FLAGS)]
    names = ["movieId", "title", "release", "video_release", "url", *flag_names]
    types = {"movieId": pa.int64(), "title": pa.string()}
    types.update({name: pa.int8() for name in flag_names})
    table = _read_typed(utf8, TextLayout(names, types, "|", header_lines=0, quoted=False))
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
    utf8 = _in_memory(ref, ref.read_bytes().decode("latin-1").encode("utf-8"))
    names = ["userId", "age", "gender", "occupation", "zip"]
    types = {
        "userId": pa.int64(),
        "age": pa.float32(),
        "gender": pa.string(),
        "occupation": pa.string(),
        "zip": pa.string(),
    }
    table = _read_typed(utf8, TextLayout(names, types, "|", header_lines=0))
    return table.to_pandas()[["userId", "age", "gender", "occupation"]]


def read_users_dat(ref: FileRef) -> pd.DataFrame:
    """ml-1m `users.dat`: `UserID::Gender::Age::Occupation::Zip-code` (age is a bucket)."""
    names = ["userId", "gender", "age", "occupation", "zip"]
    types = {
        "userId": pa.int64(),
        "gender": pa.string(),
        "age": pa.float32(),
        "occupation": pa.string(),
        "zip": pa.string(),
    }
    table = _read_typed(ref, TextLayout(names, types, "::", header_lines=0, quoted=False))
    return table.to_pandas()[["userId", "age", "gender", "occupation"]]


# ----------------------------------------------------------------------------- parsing


def _in_memory(ref: FileRef, data: bytes) -> FileRef:
    """`data` (a small file, re-encoded) under `ref`'s name."""
    return FileRef(ref.label, lambda: io.BytesIO(data))


@dataclass(frozen=True)
class TextLayout:
    """How one delimited file reads: its column `names` (None: the header's), the pyarrow
    `types` of the columns kept, the `delimiter` ("::" too), the lines before the first
    row, and whether `"` quotes a field."""

    names: list[str] | None
    types: dict[str, pa.DataType]
    delimiter: str
    header_lines: int
    quoted: bool = True


def _read_typed(ref: FileRef, text: TextLayout) -> pa.Table:
    """Stream `ref` through the CSV reader as `text` lays it out; errors name the line and
    value."""
    if ref.is_blank():
        raise messages.empty_file_error(ref.label)
    try:
        table = _read_csv(ref, text, fields.convert_options(text.types))
    except pa.ArrowInvalid as err:
        _diagnose(ref, text, err)
        raise AssertionError("unreachable") from err
    if table.num_rows == 0:
        raise messages.no_rows_error(ref.label)
    for column in text.types:
        missing = fields.missing_values(table.column(column))
        if missing is not None:
            raise messages.missing_value_error(
                ref.label, missing + 1 + text.header_lines, column, text.types[column]
            )
    return table


def _read_csv(ref: FileRef, text: TextLayout, convert: pacsv.ConvertOptions) -> pa.Table:
    """One pass of pyarrow's CSV reader over `ref` in `text`'s dialect; the file is closed
    whatever happens."""
    source, separator = ref.source(text.delimiter)
    read_options, parse_options = fields.dialect(text.names, separator, text.quoted)
    try:
        return pacsv.read_csv(
            source, read_options=read_options, parse_options=parse_options,
            convert_options=convert,
        )  # fmt: skip
    finally:
        if hasattr(source, "close"):
            source.close()


def _diagnose(ref: FileRef, text: TextLayout, err: pa.ArrowInvalid) -> None:
    """Re-read as text to name the first value that does not convert; always raises."""
    as_text = pacsv.ConvertOptions(
        column_types=dict.fromkeys(text.types, pa.string()), include_columns=list(text.types)
    )
    try:
        table = _read_csv(ref, text, as_text)
    except pa.ArrowInvalid as structural:
        raise messages.malformed_error(ref.label, structural) from None
    for column, dtype in text.types.items():
        if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)):
            continue
        found = fields.first_not_a_number(table.column(column), dtype)
        if found is not None:
            row, raw = found
            line = row + 1 + text.header_lines
            raise messages.bad_value_error(ref.label, line, column, raw, dtype)
    raise messages.cannot_parse_error(ref.label, err) from None
