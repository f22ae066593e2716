"""Parsers for every MovieLens file layout, returning typed pandas tables.

All readers go through pyarrow's multi-threaded CSV reader with explicit column types; a
file that does not convert is re-read as text only to name the first bad line and value.

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

from movierec.errors import DataError

RATING_COLUMNS = ("userId", "movieId", "rating")
RATING_TYPES = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float32()}
TIMESTAMP_TYPE = pa.int64()
RATINGS_HEADER = "userId,movieId,rating[,timestamp]"
DELIMITED_RATING_NAMES = ["userId", "movieId", "rating", "timestamp"]
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
    header = header_columns(ref.label, data, expected=RATINGS_HEADER)
    types = ratings_header_types(ref.label, header)
    table = _read_typed(ref, data, names=None, types=types, delimiter=",", header_lines=1)
    return table.to_pandas()


def read_ratings_delimited(ref: FileRef, delimiter: str) -> pd.DataFrame:
    """Header-less `user<sep>movie<sep>rating<sep>timestamp` (ml-100k `u.data`, `.dat`)."""
    data = ref.read_bytes()
    types = dict(RATING_TYPES, timestamp=TIMESTAMP_TYPE)
    table = _read_typed(
        ref, data, names=DELIMITED_RATING_NAMES, types=types, delimiter=delimiter, header_lines=0
    )
    return table.to_pandas()


def ratings_header_types(label: str, header: list[str]) -> dict[str, pa.DataType]:
    """Column types to read for a ratings header; `DataError` if a required column is absent."""
    missing = [c for c in RATING_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{label}: missing column(s) {', '.join(missing)}; expected a header "
            f"{RATINGS_HEADER}, found: {','.join(header)}"
        )
    types = dict(RATING_TYPES)
    if "timestamp" in header:
        types["timestamp"] = TIMESTAMP_TYPE
    return types


# ----------------------------------------------------------------------------- movies


def read_movies_csv(ref: FileRef) -> pd.DataFrame:
    """`movieId,title,genres` with a header; genres "|"-separated."""
    data = ref.read_bytes()
    header = header_columns(ref.label, data, expected="movieId,title,genres")
    missing = [c for c in ("movieId", "title", "genres") if c not in header]
    if missing:
        raise DataError(
            f"{ref.label}: missing column(s) {', '.join(missing)}; expected a header "
            f"movieId,title,genres, found: {','.join(header)}"
        )
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


# ----------------------------------------------------------------------------- internals


def header_columns(label: str, data: bytes, expected: str) -> list[str]:
    """Column names in the first line of `data` (a file's start); `DataError` if it is empty."""
    first_line = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip()
    if not first_line:
        raise DataError(f"{label}: file is empty; expected a header {expected} and rows")
    return [c.strip().strip('"') for c in first_line.split(",")]


def empty_file_error(label: str) -> DataError:
    return DataError(f"{label}: file is empty")


def no_rows_error(label: str) -> DataError:
    return DataError(f"{label}: no data rows (only a header)")


def missing_value_error(label: str, line: int, column: str, dtype: pa.DataType) -> DataError:
    """The error for an empty, null-marker ("NA", …) or NaN field at 1-based `line`."""
    return DataError(
        f"{label} line {line}, column '{column}': missing or NaN value; expected {_describe(dtype)}"
    )


def bad_value_error(label: str, line: int, column: str, raw: str, dtype: pa.DataType) -> DataError:
    """The error for a field `raw` at 1-based `line` that is not a value of `dtype`."""
    return DataError(f"{label} line {line}, column '{column}': {raw!r} is not {_describe(dtype)}")


def malformed_error(label: str, err: pa.ArrowInvalid) -> DataError:
    """The error for a file whose rows do not split into the expected columns."""
    return DataError(f"{label}: malformed file: {err}")


def cannot_parse_error(label: str, err: pa.ArrowInvalid) -> DataError:
    """The error for a value the CSV reader refuses although pandas reads it as a number."""
    return DataError(f"{label}: cannot parse: {err}")


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
        raise empty_file_error(ref.label)
    data, read_options, parse_options = _csv_options(data, names, delimiter, quoted)
    convert_options = _convert_options(types)
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
        raise no_rows_error(ref.label)
    for column in types:
        values = table.column(column)
        invalid = values.is_null()
        if pa.types.is_floating(values.type):
            invalid = pc.or_(invalid, pc.fill_null(pc.is_nan(values), False))
        if pc.any(invalid).as_py():
            row = int(np.flatnonzero(invalid.to_numpy(zero_copy_only=False))[0])
            raise missing_value_error(ref.label, row + 1 + header_lines, column, types[column])
    return table


def check_structure(
    label: str, data: bytes, *, names: list[str] | None, delimiter: str, quoted: bool = True
) -> None:
    """Raise `malformed_error` if `data` (a header line and rows, or rows of `names`) does
    not split into columns the way `_read_typed` needs."""
    data, read_options, parse_options = _csv_options(data, names, delimiter, quoted)
    text = pacsv.ConvertOptions(column_types={}, strings_can_be_null=False)
    try:
        pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=text,
        )
    except pa.ArrowInvalid as structural:
        raise malformed_error(label, structural) from None


def _csv_options(
    data: bytes, names: list[str] | None, delimiter: str, quoted: bool
) -> tuple[bytes, pacsv.ReadOptions, pacsv.ParseOptions]:
    if delimiter == "::":
        # pyarrow only splits on one character; no MovieLens field contains a tab.
        data = data.replace(b"::", b"\t")
        delimiter = "\t"
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    read_options = pacsv.ReadOptions(column_names=names, autogenerate_column_names=False)
    parse_options = pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False)
    return data, read_options, parse_options


def _convert_options(types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types=types, include_columns=list(types), strings_can_be_null=False
    )


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
        raise malformed_error(ref.label, structural) from None
    for column, dtype in types.items():
        if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)):
            continue
        raw = table.column(column).to_pandas()
        bad = _not_a_number(raw, dtype)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise bad_value_error(ref.label, row + 1 + header_lines, column, raw.iloc[row], dtype)
    raise cannot_parse_error(ref.label, err) from None


def _not_a_number(raw: pd.Series, dtype: pa.DataType) -> np.ndarray:
    """Fields that pandas does not read as a `dtype` number (blank fields are not flagged)."""
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = numbers.isna() & raw.notna() & (raw.str.strip() != "")
    if pa.types.is_integer(dtype):
        bad |= numbers.notna() & (numbers != np.floor(numbers))
    return bad.to_numpy(dtype=bool)


@dataclass(frozen=True)
class TokenClasses:
    """How the readers above treat each of n field texts of one numeric column.

    For engines that split fields themselves (Spark) and must judge them exactly as the
    pandas engine does. All arrays have length n.

    Attributes:
        missing: empty, a null marker ("NA", "null", …) or NaN (`missing_value_error`).
        converts: the CSV reader turns it into a value of the column's type.
        not_a_number: pandas does not read it as such a number (`bad_value_error`).
        values: converted values (int64 or float64); meaningless where `converts` is False.
        refusal: the reader's error for the first field that neither converts nor is
            missing (`cannot_parse_error`), or None.
    """

    missing: np.ndarray
    converts: np.ndarray
    not_a_number: np.ndarray
    values: np.ndarray
    refusal: pa.ArrowInvalid | None


def classify_tokens(tokens: list[str], dtype: pa.DataType, column_index: int) -> TokenClasses:
    """Judge unquoted field texts of file column `column_index` as `_read_typed` would."""
    raw = pa.array(tokens, pa.string())
    nulls = pc.is_in(raw, value_set=pa.array(_convert_options({}).null_values)).to_numpy(
        zero_copy_only=False
    )
    converted = _convert_column(tokens, dtype, column_index)
    refusal = None
    if isinstance(converted, pa.ArrowInvalid):  # some field is refused: judge one at a time
        values = np.zeros(len(tokens), _numpy_type(dtype))
        converts = np.zeros(len(tokens), dtype=bool)
        for i, token in enumerate(tokens):
            one = _convert_column([token], dtype, column_index)
            if isinstance(one, pa.ArrowInvalid):
                refusal = refusal or one
            else:
                converts[i], values[i] = True, one[0]
    else:
        converts, values = ~nulls, converted
    missing = nulls | (converts & np.isnan(values)) if values.dtype.kind == "f" else nulls
    converts &= ~missing
    return TokenClasses(missing, converts, _not_a_number(raw.to_pandas(), dtype), values, refusal)


def _convert_column(
    tokens: list[str], dtype: pa.DataType, column_index: int
) -> np.ndarray | pa.ArrowInvalid:
    """Tokens as one quoted CSV column at `column_index` (int64 or float64, nulls as 0)."""
    prefix = "," * column_index
    text = "".join(f'{prefix}"{t.replace(chr(34), chr(34) * 2)}"\n' for t in tokens)
    names = [f"c{i}" for i in range(column_index + 1)]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(text.encode()),
            read_options=pacsv.ReadOptions(column_names=names),
            convert_options=_convert_options({names[-1]: dtype}),
        )
    except pa.ArrowInvalid as err:
        return err
    column = pc.fill_null(table.column(names[-1]), 0)
    return column.to_numpy(zero_copy_only=False).astype(_numpy_type(dtype))


def _numpy_type(dtype: pa.DataType) -> type:
    return np.int64 if pa.types.is_integer(dtype) else np.float64


def _describe(dtype: pa.DataType) -> str:
    if pa.types.is_integer(dtype):
        return "an integer"
    if pa.types.is_floating(dtype):
        return "a number"
    return "a value"
