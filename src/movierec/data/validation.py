"""Checks on parsed ratings that need the whole table: scale, IDs, duplicates, unknown movies.

Each check either raises a `DataError` naming the file, line and value, or fixes the table
by a documented rule and returns a count for the report.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from movierec.data import messages
from movierec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

MISSING_MOVIE_POLICIES = ("error", "drop", "keep")


def check_rating_scale(ratings: pd.DataFrame, scale: tuple[float, float], label: str) -> None:
    """Every rating must lie in `[scale[0], scale[1]]` stars."""
    low, high = scale
    values = ratings["rating"].to_numpy()
    outside = (values < low) | (values > high)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise messages.outside_scale_error(
            label,
            values[row],
            row,
            ratings["userId"].iat[row],
            ratings["movieId"].iat[row],
            scale,
            int(outside.sum()),
        )


def check_ids(frame: pd.DataFrame, columns: tuple[str, ...], label: str) -> None:
    """IDs must be non-negative integers (they are parsed as int64 already)."""
    for column in columns:
        values = frame[column].to_numpy()
        negative = values < 0
        if negative.any():
            row = int(np.flatnonzero(negative)[0])
            raise messages.negative_id_error(label, column, row, values[row])


def drop_duplicate_ratings(ratings: pd.DataFrame, label: str) -> tuple[pd.DataFrame, int]:
    """Keep one rating per (userId, movieId): the latest by timestamp, else the last in file.

    Returns the deduplicated table (file order otherwise kept) and how many rows were dropped.
    """
    users = ratings["userId"].to_numpy()
    movies = ratings["movieId"].to_numpy()
    keys = np.stack([users, movies], axis=1)
    if "timestamp" in ratings:
        # lexsort's last key is primary: group by pair, latest timestamp (then file order) last.
        order = np.lexsort(
            (np.arange(len(ratings)), ratings["timestamp"].to_numpy(), movies, users)
        )
    else:
        order = np.lexsort((np.arange(len(ratings)), movies, users))
    sorted_keys = keys[order]
    is_last = np.ones(len(order), dtype=bool)
    is_last[:-1] = np.any(sorted_keys[1:] != sorted_keys[:-1], axis=1)
    dropped = int(len(order) - is_last.sum())
    if dropped == 0:
        return ratings, 0
    keep = np.sort(order[is_last])
    messages.log_dropped_duplicates(label, dropped)
    return ratings.iloc[keep].reset_index(drop=True), dropped


def apply_missing_movie_policy(
    ratings: pd.DataFrame, movies: pd.DataFrame, policy: str, label: str
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Handle ratings of movies absent from the movies file.

    Policies (`data.missing_movies`): "error" refuses the data; "drop" removes those
    ratings; "keep" keeps them and adds the movies with no genres and a placeholder title.
    Returns (ratings, movies, number of unknown movies).
    """
    check_missing_movie_policy(policy)
    rated = ratings["movieId"].to_numpy()
    known = np.isin(rated, movies["movieId"].to_numpy())
    if known.all():
        return ratings, movies, 0
    unknown_ids = np.unique(rated[~known])
    movies = resolve_unknown_movies(movies, unknown_ids, int((~known).sum()), policy, label)
    if policy == "drop":
        return ratings[known].reset_index(drop=True), movies, len(unknown_ids)
    return ratings, movies, len(unknown_ids)


def check_missing_movie_policy(policy: str) -> None:
    if policy not in MISSING_MOVIE_POLICIES:
        raise ConfigError(
            f"data.missing_movies={policy!r} is not valid; expected one of "
            f"{', '.join(MISSING_MOVIE_POLICIES)}"
        )


def resolve_unknown_movies(
    movies: pd.DataFrame, unknown_ids: np.ndarray, n_ratings: int, policy: str, label: str
) -> pd.DataFrame:
    """Apply `policy` to the sorted `unknown_ids` rated `n_ratings` times in all.

    Raises for "error"; otherwise warns and returns the movies table, with placeholder rows
    for "keep". Dropping the ratings themselves is the caller's (engine's) job.
    """
    shown = ", ".join(str(i) for i in unknown_ids[:5]) + (" …" if len(unknown_ids) > 5 else "")
    if policy == "error":
        raise DataError(
            f"{label}: {n_ratings} rating(s) refer to {len(unknown_ids)} movie(s) "
            f"absent from the movies file (movieId {shown}); set data.missing_movies=drop to "
            "drop those ratings or data.missing_movies=keep to keep them without genres"
        )
    log.warning(
        "%s: %d movie(s) rated but absent from the movies file (movieId %s): %s",
        label,
        len(unknown_ids),
        shown,
        "dropping their ratings" if policy == "drop" else "keeping them without genres",
    )
    if policy == "drop":
        return movies
    extra = pd.DataFrame(
        {
            "movieId": unknown_ids.astype("int64"),
            "title": [f"movieId {i}" for i in unknown_ids],
            "genres": "",
        }
    )
    return pd.concat([movies, extra], ignore_index=True)


def check_unique_movies(movies: pd.DataFrame, label: str) -> pd.DataFrame:
    """A movies file lists each movieId once; keep the first and warn on repeats."""
    duplicated = movies["movieId"].duplicated()
    if duplicated.any():
        log.warning("%s: %d repeated movieId row(s); keeping the first", label, duplicated.sum())
        return movies[~duplicated].reset_index(drop=True)
    return movies
