"""The preprocessing as one ordered list of steps, which every engine implements.

`run` takes an engine through the steps in their one order, so the pandas engine
(`preprocess`) and the Spark engine (`spark`) check the same things in the same order and
name the same first problem of a bad input. What needs no engine (the side files, the
documented counts, the movies file, the node tables, the report) `run` does itself:

    1. read the ratings: header, rows that split into columns, fields that convert, no
       missing fields (the rules of `fields`); then the movies, users and fold files
    2. documented counts (ratings, users, movies in the movies file), if verified
    3. no negative userId, then movieId
    4. every rating within the scale
    5. one rating per (userId, movieId): the latest by timestamp, else the last in the file
    6. the movies file: each movieId once; ratings of absent movies by data.missing_movies
    7. ratings left; index users and movies (positions in the sorted unique ids), ratings
       normalized to [0, 1], canonical folds; the users and movies tables and the report
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from movierec.data import messages, validation
from movierec.data.sources import DataSettings, FetchedSource, SideTables, read_side_tables


class Engine(ABC):
    """One engine's ratings, taken through the steps by `run`: one method per step.

    The ratings are the engine's own (a pandas table, a Spark frame); the methods hand
    back only sizes and sorted id arrays, which `run` combines the same way for all.
    """

    label: str  # the name errors show for the ratings input

    @abstractmethod
    def read(self) -> int:
        """Parse and check the ratings file (step 1); the number of rows read."""

    @abstractmethod
    def count_users(self) -> int:
        """Distinct userIds among the rows read (step 2)."""

    @abstractmethod
    def check_ids(self) -> None:
        """`negative_id_error` for the first negative userId, else movieId (step 3)."""

    @abstractmethod
    def check_scale(self, scale: tuple[float, float]) -> None:
        """`outside_scale_error` for the first rating outside `scale` in stars (step 4)."""

    @abstractmethod
    def drop_duplicates(self) -> int:
        """Keep one rating per (userId, movieId) (step 5); how many rows were dropped."""

    @abstractmethod
    def movie_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted distinct movieIds, int64 (n_movies,), and each one's ratings (n_movies,)."""

    @abstractmethod
    def drop_movies(self, movie_ids: np.ndarray) -> None:
        """Remove the ratings of `movie_ids` (step 6, data.missing_movies=drop)."""

    @abstractmethod
    def user_ids(self) -> np.ndarray:
        """Sorted distinct userIds, int64 (n_users,), of the ratings kept."""

    @abstractmethod
    def write(self, user_ids: np.ndarray, movie_ids: np.ndarray, folds: pd.Series | None) -> None:
        """The indexed ratings (step 7): `user`/`movie` as positions in `user_ids` /
        `movie_ids`, `rating`, `rating_norm`, [`timestamp`], and with `folds` (the fold by
        (userId, movieId)) each rating's `fold`, `unfolded_ratings_error` if one has none."""


@dataclass
class Entry:
    """What `run` builds beside the engine's ratings (see `processed` for the columns)."""

    users: pd.DataFrame  # row i = user index i
    movies: pd.DataFrame  # row j = movie index j
    genres: list[str]
    rating_scale: tuple[float, float]
    meta: dict[str, Any]


def run(engine: Engine, settings: DataSettings, fetched: FetchedSource) -> Entry:
    """Take `engine` through the steps; `DataError` / `ConfigError` on bad input."""
    label = engine.label
    raw_ratings = engine.read()
    side = read_side_tables(settings, fetched)
    if settings.spec is not None and settings.verify_counts:
        validation.verify_counts(
            settings.spec,
            label,
            ratings=raw_ratings,
            users=engine.count_users(),
            catalog_movies=len(side.movies) if side.movies is not None else None,
        )
    engine.check_ids()
    engine.check_scale(settings.scale)
    duplicates = engine.drop_duplicates()

    movie_ids, counts = engine.movie_counts()
    movies, unknown, catalog_movies = None, 0, 0
    if side.movies is not None:
        movies = validation.check_unique_movies(side.movies, label)
        catalog_movies = len(movies)
        validation.check_missing_movie_policy(settings.missing_movies)
        known = np.isin(movie_ids, movies["movieId"].to_numpy())
        if not known.all():
            unknown_ids = movie_ids[~known]
            movies = validation.resolve_unknown_movies(
                movies, unknown_ids, int(counts[~known].sum()), settings.missing_movies, label
            )
            unknown = len(unknown_ids)
            if settings.missing_movies == "drop":
                engine.drop_movies(unknown_ids)
                movie_ids, counts = movie_ids[known], counts[known]
    n_ratings = int(counts.sum())
    if n_ratings == 0:
        raise messages.no_ratings_error(label)

    user_ids = engine.user_ids()
    folds = validation.keyed_folds(side.folds, label) if side.folds is not None else None
    engine.write(user_ids, movie_ids, folds)
    users, movie_table, genres = node_tables(user_ids, movie_ids, movies, side)
    meta = {
        "dataset": settings.name,
        "engine": settings.engine,
        "source": label,
        "source_checksum": fetched.checksum,
        "raw_ratings": raw_ratings,
        "duplicates_dropped": duplicates,
        "unknown_movies": unknown,
        "missing_movies_policy": settings.missing_movies,
        "catalog_movies": catalog_movies or len(movie_ids),
        "n_users": len(user_ids),
        "n_movies": len(movie_ids),
        "n_ratings": n_ratings,
    }
    return Entry(users, movie_table, genres, settings.scale, meta)


def node_tables(
    user_ids: np.ndarray, movie_ids: np.ndarray, movies: pd.DataFrame | None, side: SideTables
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Users and movies tables (row i = index i) and genre labels, from sorted unique ids.

    `movies` is the checked movies file (None without one); `side` supplies the users file
    and the release's genre order, if any.
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


def _genre_labels(genres: pd.Series) -> list[str]:
    labels: set[str] = set()
    for value in genres.unique():
        if value:
            labels.update(value.split("|"))
    return sorted(labels)
