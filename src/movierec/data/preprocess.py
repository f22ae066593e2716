"""Raw tables → `RatingsData`: validate, deduplicate, index users and movies, build features.

Indices are positions in the sorted unique original IDs, so every engine (pandas here,
Spark in `movierec.data.spark`) produces the same maps for the same input.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from movierec.data import validation
from movierec.data.catalog import DatasetSpec
from movierec.data.processed import RatingsData
from movierec.data.sources import DataSettings, FetchedSource, RawTables
from movierec.errors import DataError

log = logging.getLogger(__name__)


def build_ratings_data(
    raw: RawTables, settings: DataSettings, fetched: FetchedSource
) -> RatingsData:
    """Validate `raw` and index it; raises `DataError` on bad input."""
    label = raw.label
    spec = settings.spec
    ratings = raw.ratings
    scale = settings.scale
    raw_rating_rows = len(ratings)
    if spec is not None and settings.verify_counts:
        _verify_counts(spec, raw, label)

    validation.check_ids(ratings, ("userId", "movieId"), label)
    validation.check_rating_scale(ratings, scale, label)
    ratings, duplicates = validation.drop_duplicate_ratings(ratings, label)

    catalog_movies = 0
    unknown_movies = 0
    if raw.movies is not None:
        movies = validation.check_unique_movies(raw.movies, label)
        catalog_movies = len(movies)
        ratings, movies, unknown_movies = validation.apply_missing_movie_policy(
            ratings, movies, settings.missing_movies, label
        )
    else:
        movies = pd.DataFrame({"movieId": np.unique(ratings["movieId"]), "title": "", "genres": ""})
    if len(ratings) == 0:
        raise DataError(f"{label}: no ratings left after validation")

    user_ids, user_idx = np.unique(ratings["userId"].to_numpy(), return_inverse=True)
    movie_ids, movie_idx = np.unique(ratings["movieId"].to_numpy(), return_inverse=True)
    stars = ratings["rating"].to_numpy(dtype=np.float32)
    low, high = scale
    table = pd.DataFrame(
        {
            "user": user_idx.astype(np.int64),
            "movie": movie_idx.astype(np.int64),
            "rating": stars,
            "rating_norm": ((stars - low) / (high - low)).astype(np.float32),
        }
    )
    if "timestamp" in ratings:
        table["timestamp"] = ratings["timestamp"].to_numpy(dtype=np.int64)
    if raw.folds is not None:
        table["fold"] = _fold_column(ratings, raw.folds, label)

    movie_rows = movies.set_index("movieId").reindex(movie_ids)
    movie_table = pd.DataFrame(
        {
            "movieId": movie_ids.astype(np.int64),
            "title": movie_rows["title"].fillna("").to_numpy(),
            "genres": movie_rows["genres"].fillna("").to_numpy(),
        }
    )
    genres = raw.genre_order or _genre_labels(movies["genres"])
    users = pd.DataFrame({"userId": user_ids.astype(np.int64)})
    if raw.users is not None:
        side = raw.users.drop_duplicates("userId").set_index("userId").reindex(user_ids)
        for column in ("age", "gender", "occupation"):
            users[column] = side[column].to_numpy()

    meta = {
        "dataset": settings.name,
        "source": label,
        "source_checksum": fetched.checksum,
        "raw_ratings": raw_rating_rows,
        "duplicates_dropped": duplicates,
        "unknown_movies": unknown_movies,
        "missing_movies_policy": settings.missing_movies,
        "catalog_movies": catalog_movies or len(movie_ids),
        "n_users": len(user_ids),
        "n_movies": len(movie_ids),
        "n_ratings": len(table),
    }
    return RatingsData(table, users, movie_table, list(genres), scale, meta)


def _verify_counts(spec: DatasetSpec, raw: RawTables, label: str) -> None:
    found = {
        "ratings": len(raw.ratings),
        "users": int(raw.ratings["userId"].nunique()),
        "movies in the movies file": len(raw.movies) if raw.movies is not None else None,
    }
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
    keyed = folds.set_index(["userId", "movieId"])["fold"]
    if keyed.index.has_duplicates:
        raise DataError(f"{label}: a (userId, movieId) pair is in more than one u*.test file")
    index = pd.MultiIndex.from_arrays([ratings["userId"], ratings["movieId"]])
    fold = keyed.reindex(index).to_numpy()
    if np.isnan(fold.astype(float)).any():
        raise DataError(f"{label}: some ratings are in none of the u*.test files")
    return fold.astype(np.int8)


def _genre_labels(genres: pd.Series) -> list[str]:
    labels: set[str] = set()
    for value in genres.unique():
        if value:
            labels.update(value.split("|"))
    return sorted(labels)
