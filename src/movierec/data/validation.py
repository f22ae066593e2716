"""Checks that need no engine: documented counts, the movies file, the u*.test folds.

They see only sizes an engine measured and small pandas tables (the movies file, the
folds), so `steps.run` applies them alike for every engine. Each either raises a
`DataError` / `ConfigError` or fixes a table by a documented rule.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from movierec.checks import check_choice
from movierec.data.catalog import DatasetSpec
from movierec.errors import DataError

log = logging.getLogger(__name__)

MISSING_MOVIE_POLICIES = ("error", "drop", "keep")


def verify_counts(
    spec: DatasetSpec,
    label: str,
    *,
    ratings: int,
    users: int,
    catalog_movies: int | None,
) -> None:
    """Compare parsed sizes with the release's documented ones; `DataError` on a mismatch."""
    found = {"ratings": ratings, "users": users, "movies in the movies file": catalog_movies}
    expected = {
        "ratings": spec.expected_ratings,
        "users": spec.expected_users,
        "movies in the movies file": spec.expected_catalog_movies,
    }
    for what, value in expected.items():
        if value is not None and found[what] is not None and found[what] != value:
            raise DataError(
                f"{label}: found {found[what]:,} {what}, GroupLens documents {value:,} for "
                f"{spec.archive}; the archive is not the documented release "
                "(set data.verify_counts=false to accept it)"
            )


def check_unique_movies(movies: pd.DataFrame, label: str) -> pd.DataFrame:
    """A movies file lists each movieId once; keep the first and warn on repeats."""
    duplicated = movies["movieId"].duplicated()
    if duplicated.any():
        log.warning("%s: %d repeated movieId row(s); keeping the first", label, duplicated.sum())
        return movies[~duplicated].reset_index(drop=True)
    return movies


def check_missing_movie_policy(policy: str) -> None:
    check_choice("data.missing_movies", policy, MISSING_MOVIE_POLICIES)


def resolve_unknown_movies(
    movies: pd.DataFrame, unknown_ids: np.ndarray, n_ratings: int, policy: str, label: str
) -> pd.DataFrame:
    """Apply `policy` (`data.missing_movies`) to the sorted `unknown_ids`, movies rated
    `n_ratings` times in all but absent from the movies file.

    "error" refuses the data; "drop" warns (dropping the ratings is the engine's step);
    "keep" warns and returns `movies` with a row per unknown movie, no genres and a
    placeholder title.
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


def keyed_folds(folds: pd.DataFrame, label: str) -> pd.Series:
    """Fold (1..k) by (userId, movieId); `DataError` if a pair is in more than one test file."""
    keyed = folds.set_index(["userId", "movieId"])["fold"]
    if keyed.index.has_duplicates:
        raise DataError(f"{label}: a (userId, movieId) pair is in more than one u*.test file")
    return keyed
