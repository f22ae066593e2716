"""Raw tables → `RatingsData`: validate, deduplicate, index users and movies, build features.

Indices are positions in the sorted unique original IDs, so every engine (pandas here,
Spark in `movierec.data.spark_engine`) produces the same maps for the same input. The
pieces an engine shares (node tables, report, count check) are public here.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from movierec.data import messages, validation
from movierec.data.catalog import DatasetSpec
from movierec.data.processed import RatingsData
from movierec.data.sources import DataSettings, FetchedSource, RawTables, SideTables
from movierec.errors import DataError

log = logging.getLogger(__name__)


def build_ratings_data(
    raw: RawTables, settings: DataSettings, fetched: FetchedSource
) -> RatingsData:
    """Validate `raw` and index it; raises `DataError` on bad input."""
    label = raw.label
    ratings = raw.ratings
    raw_rating_rows = len(ratings)
    if settings.spec is not None and settings.verify_counts:
        verify_counts(
            settings.spec,
            label,
            ratings=len(ratings),
            users=int(ratings["userId"].nunique()),
            catalog_movies=len(raw.movies) if raw.movies is not None else None,
        )

    validation.check_ids(ratings, ("userId", "movieId"), label)
    validation.check_rating_scale(ratings, settings.scale, label)
    ratings, duplicates = validation.drop_duplicate_ratings(ratings, label)

    movies = None
    unknown_movies = catalog_movies = 0
    if raw.movies is not None:
        movies = validation.check_unique_movies(raw.movies, label)
        catalog_movies = len(movies)
        ratings, movies, unknown_movies = validation.apply_missing_movie_policy(
            ratings, movies, settings.missing_movies, label
        )
    if len(ratings) == 0:
        raise messages.no_ratings_error(label)

    user_ids, user_idx = np.unique(ratings["userId"].to_numpy(), return_inverse=True)
    movie_ids, movie_idx = np.unique(ratings["movieId"].to_numpy(), return_inverse=True)
    stars = ratings["rating"].to_numpy(dtype=np.float32)
    table = pd.DataFrame(
        {
            "user": user_idx.astype(np.int64),
            "movie": movie_idx.astype(np.int64),
            "rating": stars,
            "rating_norm": normalized(stars, settings.scale),
        }
    )
    if "timestamp" in ratings:
        table["timestamp"] = ratings["timestamp"].to_numpy(dtype=np.int64)
    if raw.folds is not None:
        table["fold"] = _fold_column(ratings, raw.folds, label)

    users, movie_table, genres = node_tables(user_ids, movie_ids, movies, raw)
    meta = report(
        settings,
        fetched,
        label,
        raw_ratings=raw_rating_rows,
        duplicates_dropped=duplicates,
        unknown_movies=unknown_movies,
        n_ratings=len(table),
        catalog_movies=catalog_movies,
        n_users=len(user_ids),
        n_movies=len(movie_ids),
    )
    return RatingsData(table, users, movie_table, genres, settings.scale, meta)


def normalized(stars: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """float32 stars → float32 in [0, 1], computed in float32 (the Spark engine matches it)."""
    low, high = scale
    return ((stars - low) / (high - low)).astype(np.float32)


def node_tables(
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    movies: pd.DataFrame | None,
    side: RawTables | SideTables,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Users and movies tables (row i = index i) and genre labels, from sorted unique ids.

    `movies` is the checked movies file (None without one); `side` supplies the users file
    and the release's genre order, if any. Shared by every engine.
    """
    if movies is None:
        movies = pd.DataFrame({"movieId": movie_ids, "title": "", "genres": ""})
    movie_rows = movies.set_index("movieId").reindex(movie_ids)
    movie_table = pd.DataFrame(
        {
            "movieId": movie_ids.astype(np.int64),
            "title": movie_rows["title"].fillna("").to_numpy(),
            "genres": movie_rows["genres"].fillna("").to_numpy(),
        }
    )
    genres = side.genre_order or _genre_labels(movies["genres"])
    users = pd.DataFrame({"userId": user_ids.astype(np.int64)})
    if side.users is not None:
        rows = side.users.drop_duplicates("userId").set_index("userId").reindex(user_ids)
        for column in ("age", "gender", "occupation"):
            users[column] = rows[column].to_numpy()
    return users, movie_table, list(genres)


def report(
    settings: DataSettings,
    fetched: FetchedSource,
    label: str,
    *,
    raw_ratings: int,
    duplicates_dropped: int,
    unknown_movies: int,
    n_ratings: int,
    catalog_movies: int,
    n_users: int,
    n_movies: int,
) -> dict[str, Any]:
    """The provenance and preprocessing report stored as `RatingsData.meta`.

    `catalog_movies` is the number of rows of the checked movies file (0 without one).
    """
    return {
        "dataset": settings.name,
        "engine": settings.engine,
        "source": label,
        "source_checksum": fetched.checksum,
        "raw_ratings": raw_ratings,
        "duplicates_dropped": duplicates_dropped,
        "unknown_movies": unknown_movies,
        "missing_movies_policy": settings.missing_movies,
        "catalog_movies": catalog_movies or n_movies,
        "n_users": n_users,
        "n_movies": n_movies,
        "n_ratings": n_ratings,
    }


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


def _fold_column(ratings: pd.DataFrame, folds: pd.DataFrame, label: str) -> np.ndarray:
    """Canonical test fold (1..k) of each rating; every rating must be in exactly one."""
    keyed = keyed_folds(folds, label)
    index = pd.MultiIndex.from_arrays([ratings["userId"], ratings["movieId"]])
    fold = keyed.reindex(index).to_numpy()
    if np.isnan(fold.astype(float)).any():
        raise messages.unfolded_ratings_error(label)
    return fold.astype(np.int8)


def keyed_folds(folds: pd.DataFrame, label: str) -> pd.Series:
    """Fold by (userId, movieId); `DataError` if a pair is in more than one test file."""
    keyed = folds.set_index(["userId", "movieId"])["fold"]
    if keyed.index.has_duplicates:
        raise DataError(f"{label}: a (userId, movieId) pair is in more than one u*.test file")
    return keyed


def _genre_labels(genres: pd.Series) -> list[str]:
    labels: set[str] = set()
    for value in genres.unique():
        if value:
            labels.update(value.split("|"))
    return sorted(labels)
