"""Checking what a served model is asked, before any scoring.

A request is a DataFrame in one of two forms (see `serving.pyfunc`): rating pairs
(userId, movieId) or top-K rows (userId, k [, exclude_rated, genre, fallback]). Values
are taken as the client sent them, never coerced: ids and k are integers (not booleans,
not text), `exclude_rated` is a boolean (a JSON true/false; "false" is refused, not read
as true), `genre` and `fallback` are text; a missing option takes its default. The model
is logged without an input schema, so this module sees every column of the request (an
MLflow schema drops unknown columns and casts values before the model sees them).

Every user error is a `DataError` with one line that names the column, the row and the
value; the served model turns it into an HTTP 400 carrying that line.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from movierec.errors import DataError

#: Rows one request may hold: a bound on the memory and time one call can take.
MAX_REQUEST_ROWS = 100_000
#: a top-K request's options, and their values when the request leaves a column out
TOPK_DEFAULTS = {"exclude_rated": True, "genre": None, "fallback": None}
TOPK_OPTIONS = tuple(TOPK_DEFAULTS)
KNOWN_COLUMNS = ("userId", "movieId", "k", *TOPK_OPTIONS)
#: ids are int64; a float id is exact below 2**53
INT64_LIMIT, FLOAT_EXACT = 2**63, 2**53


def request_frame(model_input) -> pd.DataFrame:
    """The request as a DataFrame. MLflow passes one for dataframe_split/records, CSV and
    Parquet bodies, and a dict of columns for `inputs`/`instances`."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, dict):
        try:
            return pd.DataFrame({name: np.atleast_1d(v) for name, v in model_input.items()})
        except ValueError as err:
            problem = f"the request's columns do not form a table ({err})"
            raise DataError(form_message(problem)) from None
    raise DataError(form_message(f"the request is a {type(model_input).__name__}, not a table"))


def request_form(frame: pd.DataFrame) -> str:
    """ "rating" or "topk", after checking the columns and the size."""
    if len(frame) > MAX_REQUEST_ROWS:
        raise DataError(
            f"the request has {len(frame):,} rows; at most {MAX_REQUEST_ROWS:,} are answered "
            "at once, split it into several requests"
        )
    if len(frame) == 0:
        raise DataError(form_message("the request has no rows"))
    if not frame.index.equals(pd.RangeIndex(len(frame))):  # pandas' reading of a CSV row
        raise DataError(  # with more values than the header has names: the first are labels
            form_message("a row has more values than there are column names")
        )
    unknown = [str(c) for c in frame.columns if c not in KNOWN_COLUMNS]
    if unknown:
        raise DataError(form_message(f"unknown column(s) {', '.join(unknown)}"))
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise DataError(form_message(f"column(s) {', '.join(repeated)} given more than once"))
    columns = set(frame.columns)
    if "userId" not in columns:
        raise DataError(form_message("the input lacks column userId"))
    if "movieId" in columns and "k" in columns:
        raise DataError(form_message("the input has both movieId and k"))
    if "movieId" in columns:
        return "rating"
    if "k" in columns:
        return "topk"
    raise DataError(form_message("the input has neither movieId nor k"))


def integer_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """`frame[column]` as int64, refusing missing values, booleans, text and fractions
    with the column, row and value named (a float id such as 1.5 is not rounded; 2.0,
    which a JSON column with a missing value or a CSV column holds, is 2)."""
    raw = frame[column]
    if raw.dtype.kind in "iu" and not raw.hasnans:
        values, ok = raw.to_numpy(), np.ones(len(raw), dtype=bool)
        if raw.dtype.kind == "u":
            ok = values < INT64_LIMIT
        return _checked(raw, column, values.astype(np.int64), ok, "integers")
    if raw.dtype.kind == "f":
        values = raw.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < FLOAT_EXACT)
        return _checked(raw, column, np.where(ok, values, 0).astype(np.int64), ok, "integers")
    integers = [_as_integer(value) for value in raw.to_numpy(dtype=object)]
    ok = np.array([value is not None for value in integers], dtype=bool)
    values = np.array([value or 0 for value in integers], dtype=np.int64)
    return _checked(raw, column, values, ok, "integers")


def topk_options(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each top-K option of every row (an object array), its default where the column or
    the value is missing: exclude_rated a bool, genre and fallback a str or None."""
    options = {}
    for name, default in TOPK_DEFAULTS.items():
        if name not in frame.columns:
            options[name] = np.full(len(frame), default, dtype=object)
            continue
        raw = frame[name]
        values = raw.to_numpy(dtype=object)
        missing = pd.isna(values)
        if name == "exclude_rated":
            ok = missing | np.array([isinstance(v, (bool, np.bool_)) for v in values], dtype=bool)
            what = "true or false (JSON booleans)"
        else:
            ok = missing | np.array([isinstance(v, str) for v in values], dtype=bool)
            what = "text"
        values = np.where(missing, default, values)
        if name == "exclude_rated":
            values = np.array([bool(v) for v in values], dtype=object)
        options[name] = _checked(raw, name, values, ok, what)
    return options


def check_k(k: np.ndarray, n_movies: int) -> None:
    """Every k in [1, n_movies]."""
    bad = (k < 1) | (k > n_movies)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"column k must be between 1 and {n_movies:,} (the number of movies); "
            f"row {row} has {int(k[row])}"
        )


def form_message(problem: str) -> str:
    return (
        f"{problem}; send either rating pairs (columns userId, movieId) or top-K requests "
        f"(columns userId, k and optionally {', '.join(TOPK_OPTIONS)})"
    )


def _checked(raw: pd.Series, column: str, values: np.ndarray, ok: np.ndarray, what: str):
    """`values`, or the one-line error naming the first row `ok` refuses."""
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise DataError(
            f"column {column} must hold {what}; row {int(bad[0])} has "
            f"{_shown(raw.iloc[bad[0]])} ({len(bad)} such row(s))"
        )
    return values


def _as_integer(value) -> int | None:
    """`value` as an int if it is one (an integral float included), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value) if -INT64_LIMIT <= value < INT64_LIMIT else None
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return int(value) if value == round(value) and abs(value) < FLOAT_EXACT else None
    return None


def _shown(value) -> str:
    """A request value as the client wrote it (1.5, true, 'abc'), not as numpy reprs it."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (float, np.floating)):
        return "no value" if np.isnan(value) else f"{float(value):g}"
    if value is None or value is pd.NA or value is pd.NaT:
        return "no value"
    return str(value)
