"""The errors a bad ratings or movies file gets, worded once for every engine.

Both engines raise these, so the same bad file gets the same message whichever reads it.
A `line` is a 1-based line of the file (a header line counts); a `row` is a 0-based row of
the ratings in file order (headers not counted), shown 1-based.
"""

from __future__ import annotations

import logging

import pyarrow as pa

from movierec.errors import DataError

log = logging.getLogger(__name__)


def empty_file_error(label: str) -> DataError:
    return DataError(f"{label}: file is empty")


def empty_header_error(label: str, expected: str) -> DataError:
    return DataError(f"{label}: file is empty; expected a header {expected} and rows")


def no_rows_error(label: str) -> DataError:
    return DataError(f"{label}: no data rows (only a header)")


def missing_columns_error(
    label: str, missing: list[str], expected: str, header: list[str]
) -> DataError:
    return DataError(
        f"{label}: missing column(s) {', '.join(missing)}; expected a header "
        f"{expected}, found: {','.join(header)}"
    )


def missing_value_error(label: str, line: int, column: str, dtype: pa.DataType) -> DataError:
    """The error for an empty, null-marker ("NA", …) or NaN field at `line`."""
    return DataError(
        f"{label} line {line}, column '{column}': missing or NaN value; expected {_describe(dtype)}"
    )


def bad_value_error(label: str, line: int, column: str, raw: str, dtype: pa.DataType) -> DataError:
    """The error for a field `raw` at `line` that is not a value of `dtype`."""
    return DataError(f"{label} line {line}, column '{column}': {raw!r} is not {_describe(dtype)}")


def malformed_error(label: str, err: pa.ArrowInvalid) -> DataError:
    """The error for a file whose rows do not split into the expected columns."""
    return DataError(f"{label}: malformed file: {err}")


def cannot_parse_error(label: str, err: pa.ArrowInvalid) -> DataError:
    """The error for a value the CSV reader refuses although pandas reads it as a number."""
    return DataError(f"{label}: cannot parse: {err}")


def negative_id_error(label: str, column: str, row: int, value: int) -> DataError:
    """The error for the first negative ID of `column`, at `row`."""
    return DataError(
        f"{label}: column '{column}' row {row + 1} holds {value}; "
        "expected a non-negative integer ID"
    )


def outside_scale_error(
    label: str,
    rating: float,
    row: int,
    user_id: int,
    movie_id: int,
    scale: tuple[float, float],
    n_outside: int,
) -> DataError:
    """The error for the first rating outside `scale` (stars), at `row`."""
    low, high = scale
    return DataError(
        f"{label}: rating {rating:g} (row {row + 1} of the data, userId {user_id}, movieId "
        f"{movie_id}) is outside the dataset's scale [{low:g}, {high:g}]; {n_outside} "
        "rating(s) are outside it (set data.rating_scale for another scale)"
    )


def no_ratings_error(label: str) -> DataError:
    return DataError(f"{label}: no ratings left after validation")


def unfolded_ratings_error(label: str) -> DataError:
    return DataError(f"{label}: some ratings are in none of the u*.test files")


def log_dropped_duplicates(label: str, dropped: int) -> None:
    log.warning(
        "%s: dropped %d duplicate (userId, movieId) rating(s), keeping the latest of each",
        label,
        dropped,
    )


def _describe(dtype: pa.DataType) -> str:
    if pa.types.is_integer(dtype):
        return "an integer"
    if pa.types.is_floating(dtype):
        return "a number"
    return "a value"
