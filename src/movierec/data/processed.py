"""`RatingsData`: validated ratings with contiguous user/movie indices, and its on-disk form.

The on-disk form is the interface between preprocessing engines (pandas here, Spark in
`movierec.data.spark`) and everything downstream: a folder with

    ratings.parquet  user (int64 index), movie (int64 index), rating (float32 stars),
                     rating_norm (float32 in [0, 1]), [timestamp (int64 s)], [fold (int8)]
    users.parquet    row i = user index i: userId, [age, gender, occupation]
    movies.parquet   row j = movie index j: movieId, title, genres ("|"-separated)
    meta.json        dataset name, genres, rating scale, counts, source checksum, report
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.errors import DataError

RATINGS_FILE = "ratings.parquet"
USERS_FILE = "users.parquet"
MOVIES_FILE = "movies.parquet"
META_FILE = "meta.json"
#: meta.json key of the integrity record {file name: {bytes, sha256}} (`cache.seal`)
FILES_KEY = "files"
#: ratings.parquet's column types, in column order (timestamp and fold when present)
RATINGS_TYPES = {
    "user": pa.int64(),
    "movie": pa.int64(),
    "rating": pa.float32(),
    "rating_norm": pa.float32(),
    "timestamp": pa.int64(),
    "fold": pa.int8(),
}


@dataclass
class RatingsData:
    """Validated, indexed ratings of one dataset.

    Attributes:
        ratings: one row per rating; `user`/`movie` index into `users`/`movies`.
        users: (n_users,) rows, row i describes user index i; `userId` is the original id.
        movies: (n_movies,) rows, row j describes movie index j (rated movies only).
        genres: genre labels, the columns of `genre_matrix()`.
        rating_scale: (lowest, highest) rating in stars.
        meta: provenance and the preprocessing report (counts, dropped rows).
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    movies: pd.DataFrame
    genres: list[str]
    rating_scale: tuple[float, float]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.meta.get("dataset", "ratings"))

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_movies(self) -> int:
        return len(self.movies)

    @property
    def n_ratings(self) -> int:
        return len(self.ratings)

    @property
    def has_timestamps(self) -> bool:
        return "timestamp" in self.ratings

    @property
    def has_user_side_features(self) -> bool:
        return {"age", "gender", "occupation"} <= set(self.users.columns)

    def without_ratings(self) -> RatingsData:
        """This dataset with an empty ratings table: the node tables, meta and row count
        (`n_ratings`) stay. Call `release_arrow_memory` once the full one is dropped."""
        return replace(self, ratings=self.ratings.iloc[:, :0])

    def genre_matrix(self) -> np.ndarray:
        """Multi-hot genres, float32 of shape (n_movies, len(genres))."""
        column = {g: i for i, g in enumerate(self.genres)}
        matrix = np.zeros((self.n_movies, len(self.genres)), dtype=np.float32)
        for row, labels in enumerate(self.movies["genres"].to_numpy()):
            for label in labels.split("|") if labels else ():
                matrix[row, column[label]] = 1.0
        return matrix

    def user_index(self, user_ids: Any) -> np.ndarray:
        """Map original userIds to indices; raise `DataError` naming any unknown id."""
        return lookup_ids(self.users["userId"].to_numpy(), user_ids, "userId")

    def movie_index(self, movie_ids: Any) -> np.ndarray:
        """Map original movieIds to indices; raise `DataError` naming any unknown id."""
        return lookup_ids(self.movies["movieId"].to_numpy(), movie_ids, "movieId")

    def save(self, directory: Path) -> None:
        """Write the on-disk form into an existing empty `directory`."""
        write_ratings(directory, pa.Table.from_pandas(self.ratings, preserve_index=False))
        save_node_tables(
            directory, self.users, self.movies, self.genres, self.rating_scale, self.meta
        )

    @classmethod
    def load(cls, directory: Path) -> RatingsData:
        """Read the on-disk form written by `save` (or by the Spark engine)."""
        meta = json.loads((directory / META_FILE).read_text())
        meta.pop(FILES_KEY, None)  # the cache's integrity record, not a fact about the data
        genres = list(meta.pop("genres"))
        scale = tuple(float(v) for v in meta.pop("rating_scale"))
        return cls(
            ratings=read_ratings(directory),
            users=pd.read_parquet(directory / USERS_FILE),
            movies=pd.read_parquet(directory / MOVIES_FILE),
            genres=genres,
            rating_scale=(scale[0], scale[1]),
            meta=meta,
        )


def ratings_schema(names: list[str]) -> pa.Schema:
    """The schema of a ratings.parquet with columns `names` (see `RATINGS_TYPES`)."""
    return pa.schema([(name, RATINGS_TYPES[name]) for name in names])


def parquet_options(names: list[str]) -> dict[str, Any]:
    """Parquet writer options for ratings columns `names`: dictionary pages for all but
    the timestamps, which are nearly all distinct (encoding them first as a dictionary
    only to fall back costs a quarter of the write and saves no space)."""
    return {"use_dictionary": [name for name in names if name != "timestamp"]}


def write_ratings(directory: Path, table: pa.Table) -> None:
    """Write `table` (the columns of `RATINGS_TYPES`) as `directory/ratings.parquet`."""
    names = table.column_names
    pq.write_table(
        table.cast(ratings_schema(names)), directory / RATINGS_FILE, **parquet_options(names)
    )


def read_ratings(directory: Path) -> pd.DataFrame:
    """`directory/ratings.parquet` as a frame, converted column by column: each Arrow column
    is freed (and handed back to the system) once converted, so the peak is about one
    copy of the ratings rather than two."""
    table = pq.read_table(directory / RATINGS_FILE)
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table  # unusable after self_destruct
    release_arrow_memory()
    return frame


def release_arrow_memory() -> None:
    """Hand freed Arrow memory back to the system. The ratings columns live in Arrow's
    pool (`read_ratings` converts without copying), which keeps what is freed for reuse
    by Arrow alone until told otherwise."""
    pa.default_memory_pool().release_unused()


def save_node_tables(
    directory: Path,
    users: pd.DataFrame,
    movies: pd.DataFrame,
    genres: list[str],
    rating_scale: tuple[float, float],
    meta: dict[str, Any],
) -> None:
    """Write everything but `ratings.parquet` (an engine that writes the ratings itself)."""
    users.to_parquet(directory / USERS_FILE, index=False)
    movies.to_parquet(directory / MOVIES_FILE, index=False)
    meta = dict(meta, genres=genres, rating_scale=list(rating_scale))
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))


def lookup_ids(sorted_ids: np.ndarray, query: Any, column: str) -> np.ndarray:
    """Positions of original ids in `sorted_ids`; `DataError` naming unknown or bad ids."""
    values = np.atleast_1d(np.asarray(query))
    try:
        values = values.astype(np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{column} values must be integers, got {list(values[:5])}") from None
    position = np.clip(np.searchsorted(sorted_ids, values), 0, max(len(sorted_ids) - 1, 0))
    unknown = sorted_ids[position] != values
    if unknown.any():
        shown = ", ".join(str(v) for v in np.unique(values[unknown])[:10])
        raise DataError(f"unknown {column}(s): {shown} (not in the training data)")
    return position
