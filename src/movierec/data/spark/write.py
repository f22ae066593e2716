"""The Spark engine's output: indexed ratings as Parquet parts, concatenated into the
processed entry's `ratings.parquet`, and the small tables and meta beside them.

The entry is the pandas engine's (`processed`): same files, columns and types, same rows in
the same (file) order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.data import messages
from movierec.data.processed import (
    RATINGS_FILE,
    parquet_options,
    ratings_schema,
    save_node_tables,
)
from movierec.data.spark.scan import Scan
from movierec.data.steps import Entry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def write_ratings(
    frame: DataFrame,
    scan: Scan,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    folds: pd.Series | None,
    scale: tuple[float, float],
    *,
    needs_sort: bool,
    scratch: Path,
    staging: Path,
) -> None:
    """Index, normalize and write `staging/ratings.parquet` in file order.

    Indices are positions in the sorted `user_ids` / `movie_ids`; `folds` is the test fold
    by (userId, movieId), `unfolded_ratings_error` if a rating has none. The maps go to
    Spark as broadcasts, which keep the scan's row order; a frame that went through a
    shuffle (`needs_sort`: duplicates removed) or spans several files is sorted back into
    (file, scan id) order first.
    """
    from pyspark.sql import functions as F

    spark = frame.sparkSession
    user_map = spark.createDataFrame(
        pd.DataFrame({"userId": user_ids, "user": np.arange(len(user_ids), dtype=np.int64)})
    )
    movie_map = spark.createDataFrame(
        pd.DataFrame({"movieId": movie_ids, "movie": np.arange(len(movie_ids), dtype=np.int64)})
    )
    low, high = scale
    rating = F.col("rating").cast("float")
    # The pandas engine computes (stars - low) / (high - low) in float32; Spark subtracts
    # in float32 and divides in float64, which rounds to the same float32.
    norm = ((rating - F.lit(low).cast("float")) / F.lit(high - low).cast("float")).cast("float")
    out = frame.join(F.broadcast(user_map), "userId").join(F.broadcast(movie_map), "movieId")
    columns = [F.col("user"), F.col("movie"), rating.alias("rating"), norm.alias("rating_norm")]
    if scan.has_timestamp:
        columns.append(F.col("timestamp").cast("long").alias("timestamp"))
    if folds is not None:
        keyed = spark.createDataFrame(folds.reset_index().astype({"fold": np.int8}))
        out = out.join(F.broadcast(keyed), ["userId", "movieId"], "left")
        columns.append(F.col("fold").cast("byte").alias("fold"))
        if out.filter(F.col("fold").isNull()).limit(1).count():
            raise messages.unfolded_ratings_error(scan.label)
    if needs_sort or len(scan.files) > 1:
        out = out.orderBy("_file", "_row")  # last, so that no rule drops it
    parts = scratch / "ratings-parts"
    out.select(*columns).write.parquet(parts.as_uri())
    concatenate_parts(parts, staging / RATINGS_FILE)


def write_tables(staging: Path, entry: Entry) -> None:
    """The users, movies and meta of `entry` beside `ratings.parquet`."""
    save_node_tables(
        staging, entry.users, entry.movies, entry.genres, entry.rating_scale, entry.meta
    )


def concatenate_parts(parts: Path, target: Path) -> None:
    """Spark's part files, in part order, as one Parquet file with the pandas engine's
    column types. Streams record batches: memory stays at one batch.

    One file, because the processed entry is the pandas engine's: `RatingsData.load`, the
    tracking layer and the served model all read `ratings.parquet` as a file.
    """
    files = sorted(parts.glob("part-*.parquet"), key=lambda p: int(p.name.split("-")[1]))
    first = pq.read_schema(files[0]) if files else None
    schema = ratings_schema(first.names if first is not None else [])
    with pq.ParquetWriter(target, schema, **parquet_options(schema.names)) as writer:
        for file in files:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=1 << 20):
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))
