"""How a field of a MovieLens file is read: the columns and their types, the CSV dialect,
and which field texts convert, count as missing or are refused.

One set of rules for every engine: the pandas readers apply them to whole files (pyarrow's
CSV reader with these options), the Spark engine to the distinct field texts it could not
convert itself (`classify_tokens`), so both accept and refuse the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec.data import messages

RATING_COLUMNS = ("userId", "movieId", "rating")
RATING_TYPES = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float32()}
TIMESTAMP_TYPE = pa.int64()
RATINGS_HEADER = "userId,movieId,rating[,timestamp]"
DELIMITED_RATING_NAMES = ["userId", "movieId", "rating", "timestamp"]


def header_columns(label: str, data: bytes, expected: str) -> list[str]:
    """Column names in the first line of `data` (a file's start); `DataError` if it is empty."""
    first_line = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip()
    if not first_line:
        raise messages.empty_header_error(label, expected)
    return [c.strip().strip('"') for c in first_line.split(",")]


def ratings_header_types(label: str, header: list[str]) -> dict[str, pa.DataType]:
    """Column types to read for a ratings header; `DataError` if a required column is absent."""
    missing = [c for c in RATING_COLUMNS if c not in header]
    if missing:
        raise messages.missing_columns_error(label, missing, RATINGS_HEADER, header)
    types = dict(RATING_TYPES)
    if "timestamp" in header:
        types["timestamp"] = TIMESTAMP_TYPE
    return types


def dialect(
    names: list[str] | None, delimiter: str, quoted: bool
) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions]:
    """The CSV reader's options for a one-character `delimiter` (a UTF-8 BOM is skipped)."""
    read_options = pacsv.ReadOptions(column_names=names, autogenerate_column_names=False)
    parse_options = pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False)
    return read_options, parse_options


def csv_options(
    data: bytes, names: list[str] | None, delimiter: str, quoted: bool
) -> tuple[bytes, pacsv.ReadOptions, pacsv.ParseOptions]:
    """`data` as pyarrow reads it ("::" as a tab) and the reader's dialect options."""
    if delimiter == "::":
        # pyarrow only splits on one character; no MovieLens field contains a tab.
        data = data.replace(b"::", b"\t")
        delimiter = "\t"
    return (data, *dialect(names, delimiter, quoted))


def convert_options(types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    """Read exactly the columns of `types`, as those types; blank strings are not null."""
    return pacsv.ConvertOptions(
        column_types=types, include_columns=list(types), strings_can_be_null=False
    )


def check_structure(
    label: str, data: bytes, *, names: list[str] | None, delimiter: str, quoted: bool = True
) -> None:
    """Raise `malformed_error` if `data` (a header line and rows, or rows of `names`) does
    not split into columns the way the readers need."""
    data, read_options, parse_options = csv_options(data, names, delimiter, quoted)
    text = pacsv.ConvertOptions(column_types={}, strings_can_be_null=False)
    try:
        pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=text,
        )
    except pa.ArrowInvalid as structural:
        raise messages.malformed_error(label, structural) from None


def missing_values(values: pa.ChunkedArray) -> int | None:
    """Row of the first null (or NaN, for floats) of a converted column; None if none."""
    invalid = values.is_null()
    if pa.types.is_floating(values.type):
        invalid = pc.or_(invalid, pc.fill_null(pc.is_nan(values), False))
    row = pc.index(invalid, True).as_py()
    return None if row < 0 else row


def first_not_a_number(raw: pa.ChunkedArray, dtype: pa.DataType) -> tuple[int, str] | None:
    """Row and text of the first field of a text column that is not a `dtype` number
    (`not_a_number`), or None; each distinct text is judged once."""
    distinct = pc.unique(raw)
    bad = distinct.filter(pa.array(not_a_number(distinct.to_pandas(), dtype)))
    if len(bad) == 0:
        return None
    row = pc.index(pc.is_in(raw, value_set=bad), True).as_py()
    return row, raw[row].as_py()


def not_a_number(raw: pd.Series, dtype: pa.DataType) -> np.ndarray:
    """Fields that pandas does not read as a `dtype` number (blank fields are not flagged)."""
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = numbers.isna() & raw.notna() & (raw.str.strip() != "")
    if pa.types.is_integer(dtype):
        bad |= numbers.notna() & (numbers != np.floor(numbers))
    return bad.to_numpy(dtype=bool)


@dataclass(frozen=True)
class TokenClasses:
    """How the readers treat each of n field texts of one numeric column.

    For engines that split fields themselves (Spark) and must judge them exactly as the
    pandas readers do. All arrays have length n.

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
    """Judge unquoted field texts of file column `column_index` as the readers would."""
    raw = pa.array(tokens, pa.string())
    nulls = pc.is_in(raw, value_set=pa.array(convert_options({}).null_values)).to_numpy(
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
    return TokenClasses(missing, converts, not_a_number(raw.to_pandas(), dtype), values, refusal)


def _convert_column(
    tokens: list[str], dtype: pa.DataType, column_index: int
) -> np.ndarray | pa.ArrowInvalid:
    """Tokens as one quoted CSV column at `column_index` (int64 or float64, nulls as 0)."""
    # The column's position is kept: pyarrow's messages name it ("column #2").
    prefix = "," * column_index
    text = "".join(f'{prefix}"{t.replace(chr(34), chr(34) * 2)}"\n' for t in tokens)
    names = [f"c{i}" for i in range(column_index + 1)]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(text.encode()),
            read_options=pacsv.ReadOptions(column_names=names),
            convert_options=convert_options({names[-1]: dtype}),
        )
    except pa.ArrowInvalid as err:
        return err
    column = pc.fill_null(table.column(names[-1]), 0)
    return column.to_numpy(zero_copy_only=False).astype(_numpy_type(dtype))


def _numpy_type(dtype: pa.DataType) -> type:
    return np.int64 if pa.types.is_integer(dtype) else np.float64
