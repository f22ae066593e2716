"""The pandas engine (the default): the steps of `steps` on in-memory NumPy columns.

The ratings are streamed by the readers (`readers`) into one (n,) array per column, so
this engine reads one CSV or delimited file, a release's or the user's; the Spark engine
reads the rest. Every check is a vectorised pass over those arrays; ids are counted and
indexed without sorting where they are dense (`ids`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from movierec.data import ids, messages, readers, steps
from movierec.data.processed import save_node_tables, write_ratings
from movierec.data.sources import DataSettings, FetchedSource, ratings_file
from movierec.errors import ConfigError


def build_processed(settings: DataSettings, fetched: FetchedSource, staging: Path) -> None:
    """Write the processed entry of `fetched` into the empty folder `staging`.

    Raises `DataError` / `ConfigError` on bad input (before anything is written).
    """
    engine = PandasEngine(settings, fetched)
    entry = steps.run(engine, settings, fetched)
    assert engine.table is not None
    write_ratings(staging, engine.table)
    save_node_tables(
        staging, entry.users, entry.movies, entry.genres, entry.rating_scale, entry.meta
    )
    del engine
    pa.default_memory_pool().release_unused()  # what Arrow freed, back to the system


class PandasEngine(steps.Engine):
    """The steps on `ratings` (userId, movieId, rating, [timestamp]; see `readers`), in file
    order; `write` leaves the indexed table (see `processed`) in `table`."""

    def __init__(self, settings: DataSettings, fetched: FetchedSource) -> None:
        self.source = ratings_file(settings, fetched)
        self.label = self.source.label
        self.scale = settings.scale
        self.ratings: readers.Columns = {}
        self.table: pa.Table | None = None

    def read(self) -> int:
        source = self.source
        if source.ref is None or source.form.read is None:
            raise ConfigError(
                f"{source.label}: the pandas engine reads one CSV file; set data.engine=spark "
                "to read Parquet, folders of part files or remote paths"
            )
        self.ratings = source.form.read(source.ref, source.delimiter)
        return len(self.ratings["userId"])

    def count_users(self) -> int:
        return len(ids.distinct(self.ratings["userId"]))

    def check_ids(self) -> None:
        for column in ("userId", "movieId"):
            values = self.ratings[column]
            if len(values) and values.min() < 0:
                row = int(np.argmax(values < 0))
                raise messages.negative_id_error(self.label, column, row, values[row])

    def check_scale(self, scale: tuple[float, float]) -> None:
        low, high = scale
        ratings = self.ratings
        values = ratings["rating"]
        outside = (values < low) | (values > high)
        if outside.any():
            row = int(np.argmax(outside))
            raise messages.outside_scale_error(
                self.label,
                values[row],
                row,
                ratings["userId"][row],
                ratings["movieId"][row],
                scale,
                int(outside.sum()),
            )

    def drop_duplicates(self) -> int:
        """Keep the latest rating of each (userId, movieId) by timestamp, else the last in
        the file; the other rows keep their file order."""
        ratings = self.ratings
        keep = ids.latest_per_pair(ratings["userId"], ratings["movieId"], ratings.get("timestamp"))
        if keep is None:
            return 0
        dropped = int(len(keep) - keep.sum())
        messages.log_dropped_duplicates(self.label, dropped)
        self._keep(keep)
        return dropped

    def movie_counts(self) -> tuple[np.ndarray, np.ndarray]:
        return ids.distinct_counts(self.ratings["movieId"])

    def drop_movies(self, movie_ids: np.ndarray) -> None:
        self._keep(~np.isin(self.ratings["movieId"], movie_ids))

    def user_ids(self) -> np.ndarray:
        return ids.distinct(self.ratings["userId"])

    def write(self, user_ids: np.ndarray, movie_ids: np.ndarray, folds: pd.Series | None) -> None:
        ratings = self.ratings
        stars = ratings["rating"]
        table = {
            "user": ids.positions(user_ids, ratings["userId"]),
            "movie": ids.positions(movie_ids, ratings["movieId"]),
            "rating": stars,
            "rating_norm": normalized(stars, self.scale),
        }
        if "timestamp" in ratings:
            table["timestamp"] = ratings["timestamp"]
        if folds is not None:
            index = pd.MultiIndex.from_arrays([ratings["userId"], ratings["movieId"]])
            fold = folds.reindex(index).to_numpy()
            if np.isnan(fold.astype(float)).any():
                raise messages.unfolded_ratings_error(self.label)
            table["fold"] = fold.astype(np.int8)
        self.table = pa.table(table)

    def _keep(self, rows: np.ndarray) -> None:
        """Keep the ratings where `rows` (n,) bool is True, in file order."""
        self.ratings = {name: values[rows] for name, values in self.ratings.items()}


def normalized(stars: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """float32 stars → float32 in [0, 1], computed in float32 (the Spark engine matches it)."""
    low, high = scale
    return ((stars - low) / (high - low)).astype(np.float32)
