"""The pandas engine (the default): the steps of `steps` on one in-memory ratings table.

The ratings are read whole by the pandas readers (`readers`), so this engine reads one CSV
or delimited file, a release's or the user's; the Spark engine reads the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from movierec.data import messages, readers, steps
from movierec.data.processed import RatingsData
from movierec.data.sources import DataSettings, FetchedSource, ratings_file
from movierec.errors import ConfigError


def build_ratings_data(settings: DataSettings, fetched: FetchedSource) -> RatingsData:
    """The processed data of `fetched`; raises `DataError` / `ConfigError` on bad input."""
    engine = PandasEngine(settings, fetched)
    entry = steps.run(engine, settings, fetched)
    assert engine.table is not None
    return RatingsData(
        engine.table, entry.users, entry.movies, entry.genres, entry.rating_scale, entry.meta
    )


class PandasEngine(steps.Engine):
    """The steps on `ratings` (userId, movieId, rating, [timestamp]; see `readers`), in file
    order; `write` leaves the indexed table (see `processed`) in `table`."""

    def __init__(self, settings: DataSettings, fetched: FetchedSource) -> None:
        self.source = ratings_file(settings, fetched)
        self.label = self.source.label
        self.scale = settings.scale
        self.ratings = pd.DataFrame()
        self.table: pd.DataFrame | None = None

    def read(self) -> int:
        source = self.source
        if source.ref is None or source.layout == "parquet":
            raise ConfigError(
                f"{source.label}: the pandas engine reads one CSV file; set data.engine=spark "
                "to read Parquet, folders of part files or remote paths"
            )
        if source.layout == "csv":
            self.ratings = readers.read_ratings_csv(source.ref)
        else:
            self.ratings = readers.read_ratings_delimited(source.ref, source.delimiter)
        return len(self.ratings)

    def count_users(self) -> int:
        return int(self.ratings["userId"].nunique())

    def check_ids(self) -> None:
        for column in ("userId", "movieId"):
            values = self.ratings[column].to_numpy()
            negative = values < 0
            if negative.any():
                row = int(np.flatnonzero(negative)[0])
                raise messages.negative_id_error(self.label, column, row, values[row])

    def check_scale(self, scale: tuple[float, float]) -> None:
        low, high = scale
        ratings = self.ratings
        values = ratings["rating"].to_numpy()
        outside = (values < low) | (values > high)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise messages.outside_scale_error(
                self.label,
                values[row],
                row,
                ratings["userId"].iat[row],
                ratings["movieId"].iat[row],
                scale,
                int(outside.sum()),
            )

    def drop_duplicates(self) -> int:
        """Keep the latest rating of each (userId, movieId) by timestamp, else the last in
        the file; the other rows keep their file order."""
        ratings = self.ratings
        users = ratings["userId"].to_numpy()
        movies = ratings["movieId"].to_numpy()
        keys = np.stack([users, movies], axis=1)
        position = np.arange(len(ratings))
        if "timestamp" in ratings:
            # lexsort's last key is primary: group by pair, latest timestamp (then file
            # order) last.
            order = np.lexsort((position, ratings["timestamp"].to_numpy(), movies, users))
        else:
            order = np.lexsort((position, movies, users))
        sorted_keys = keys[order]
        is_last = np.ones(len(order), dtype=bool)
        is_last[:-1] = np.any(sorted_keys[1:] != sorted_keys[:-1], axis=1)
        dropped = int(len(order) - is_last.sum())
        if dropped:
            keep = np.sort(order[is_last])
            messages.log_dropped_duplicates(self.label, dropped)
            self.ratings = ratings.iloc[keep].reset_index(drop=True)
        return dropped

    def movie_counts(self) -> tuple[np.ndarray, np.ndarray]:
        return np.unique(self.ratings["movieId"].to_numpy(), return_counts=True)

    def drop_movies(self, movie_ids: np.ndarray) -> None:
        known = ~np.isin(self.ratings["movieId"].to_numpy(), movie_ids)
        self.ratings = self.ratings[known].reset_index(drop=True)

    def user_ids(self) -> np.ndarray:
        return np.unique(self.ratings["userId"].to_numpy())

    def write(self, user_ids: np.ndarray, movie_ids: np.ndarray, folds: pd.Series | None) -> None:
        ratings = self.ratings
        stars = ratings["rating"].to_numpy(dtype=np.float32)
        table = pd.DataFrame(
            {
                "user": np.searchsorted(user_ids, ratings["userId"].to_numpy()).astype(np.int64),
                "movie": np.searchsorted(movie_ids, ratings["movieId"].to_numpy()).astype(np.int64),
                "rating": stars,
                "rating_norm": normalized(stars, self.scale),
            }
        )
        if "timestamp" in ratings:
            table["timestamp"] = ratings["timestamp"].to_numpy(dtype=np.int64)
        if folds is not None:
            index = pd.MultiIndex.from_arrays([ratings["userId"], ratings["movieId"]])
            fold = folds.reindex(index).to_numpy()
            if np.isnan(fold.astype(float)).any():
                raise messages.unfolded_ratings_error(self.label)
            table["fold"] = fold.astype(np.int8)
        self.table = table


def normalized(stars: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """float32 stars → float32 in [0, 1], computed in float32 (the Spark engine matches it)."""
    low, high = scale
    return ((stars - low) / (high - low)).astype(np.float32)
