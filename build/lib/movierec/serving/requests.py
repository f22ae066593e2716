"""Checking what a served model is asked, before any scoring.

A request is a DataFrame in one of two forms (see `serving.pyfunc`): rating pairs
(userId, movieId) or top-K rows (userId, k [, exclude_rated, genre, fallback]). Every
user error is a `DataError` with one line that names the column and the value; the
served model turns it into an HTTP 400 carrying that line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from movierec.errors import DataError

#: Rows one request may hold: a bound on the memory and time one call can take.
MAX_REQUEST_ROWS = 100_000
RATING_COLUMNS = ("userId", "movieId")
TOPK_OPTIONS = ("exclude_rated", "genre", "fallback")
KNOWN_COLUMNS = {"userId", "movieId", "k", *TOPK_OPTIONS}


def request_form(frame: pd.DataFrame) -> str:
    """ "rating" or "topk", after checking the columns and the size."""
    columns = set(frame.columns)
    if len(frame) > MAX_REQUEST_ROWS:
        raise DataError(
            f"the request has {len(frame):,} rows; at most {MAX_REQUEST_ROWS:,} are answered "
            "at once, split it into several requests"
        )
    if len(frame) == 0:
        raise DataError(form_message("the request has no rows"))
    unknown = sorted(str(c) for c in columns - KNOWN_COLUMNS)
    if unknown:
        raise DataError(form_message(f"unknown column(s) {', '.join(unknown)}"))
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
    """`frame[column]` as int64, refusing missing, non-numeric and fractional values with
    the column, row and value named (a float id such as 1.5 is not rounded)."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) >= 2**53)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"column {column} must hold integers; row {row} has {_shown(raw.iloc[row])} "
            f"({int(bad.sum())} such row(s))"
        )
    return values.astype(np.int64)


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


def _shown(value) -> str:
    """A request value as the client wrote it (1.5, nan, 'abc'), not as numpy reprs it."""
    if value is None or value is pd.NA:
        return "no value"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (float, np.floating)):
        return "nan" if np.isnan(value) else f"{float(value):g}"
    return str(value)
