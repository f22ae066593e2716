"""The Spark engine: the steps of `steps` on a Spark frame, and its two entry points.

`build_processed` writes the same processed entry as the pandas engine for the same input;
`fetch_remote_ratings` stands in for `sources.fetch_source` for ratings only Spark reaches.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from movierec.data import messages, steps
from movierec.data.download import archive_sha256
from movierec.data.sources import DataSettings, FetchedSource, ratings_file
from movierec.data.spark.checks import Checks
from movierec.data.spark.scan import Scan, input_location
from movierec.data.spark.session import SparkSettings, spark_session
from movierec.data.spark.write import write_ratings, write_tables
from movierec.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def build_processed(settings: DataSettings, fetched: FetchedSource, staging: Path) -> None:
    """Write the processed entry of `fetched` into the empty folder `staging` with Spark.

    Raises `DataError` / `ConfigError` with the pandas engine's messages on bad input.
    """
    scratch = Path(tempfile.mkdtemp(prefix=".spark-", dir=staging.parent))
    try:
        with spark_session(SparkSettings.from_mapping(settings.spark)) as spark:
            engine = SparkEngine(spark, settings, fetched, scratch, staging)
            try:
                entry = steps.run(engine, settings, fetched)
            finally:
                engine.release()
        write_tables(staging, entry)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fetch_remote_ratings(settings: DataSettings) -> FetchedSource:
    """A ratings URI only Spark reaches (hdfs://, s3a://, …): its checksum hashes the
    listed files' paths, sizes and modification times (their content stays remote)."""
    uri = str(settings.ratings_path)
    files: dict[str, Path] = {}
    digest = hashlib.sha256(b"ratings")
    # The JVM stays for the build that follows (one JVM start, not two).
    with spark_session(SparkSettings.from_mapping(settings.spark), keep_jvm=True) as spark:
        try:
            listing = (
                spark.read.format("binaryFile")
                .load(uri)
                .select("path", "length", "modificationTime")
                .orderBy("path")
                .collect()
            )
        except Exception as err:
            reason = " ".join(str(err).split())[:300]
            raise DataError(
                f"{uri}: ratings file not found (data.ratings_path): {reason}"
            ) from None
    if not listing:
        raise DataError(f"{uri}: ratings file not found (data.ratings_path)")
    for row in listing:
        digest.update(f"{row.path}\0{row.length}\0{row.modificationTime}\n".encode())
    if settings.movies_path:
        movies = Path(settings.movies_path).expanduser()
        if not movies.is_file():
            raise DataError(f"{movies}: movies file not found (data.movies_path)")
        files["movies"] = movies
        digest.update(archive_sha256(movies).encode())
    return FetchedSource(files=files, checksum=digest.hexdigest(), ratings_uri=uri)


class SparkEngine(steps.Engine):
    """The steps on the scan of one ratings input (`scan`), checked by `checks`.

    The scan is read once and persisted; `frame` is it with pyarrow's values for odd
    fields, then without duplicates and dropped movies. Only sizes, sorted ids and the
    few rows an error names come back to the driver.
    """

    def __init__(
        self,
        spark: SparkSession,
        settings: DataSettings,
        fetched: FetchedSource,
        scratch: Path,
        staging: Path,
    ) -> None:
        self.spark = spark
        self.source = ratings_file(settings, fetched)
        self.label = self.source.label
        self.scale = settings.scale
        self.scratch, self.staging = scratch, staging
        self.scan: Scan | None = None
        self.checks: Checks | None = None
        self.frame: DataFrame | None = None
        self.shuffled = False  # rows left file order (sorted back before writing)
        self._users: np.ndarray | None = None

    def read(self) -> int:
        location = input_location(self.source, self.scratch)
        self.scan = Scan.read(self.spark, self.source, location)
        self.checks = Checks.survey(self.scan, self.scale)
        self.checks.check_rows()
        self.checks.check_fields()
        self.frame = self.checks.with_replacements()
        return self.checks.positions.total

    def count_users(self) -> int:
        return len(self.user_ids())

    def check_ids(self) -> None:
        self._checks.check_ids(self._frame)

    def check_scale(self, scale: tuple[float, float]) -> None:
        assert scale == self.scale  # the survey counted against it already
        self._checks.check_scale(self._frame)

    def drop_duplicates(self) -> int:
        """Keep the latest rating of each (userId, movieId) by timestamp, then file order."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        frame = self._frame
        pairs = frame.groupBy("userId", "movieId").count().filter(F.col("count") > 1)
        dropped = int(pairs.agg(F.sum(F.col("count") - 1)).first()[0] or 0)
        if dropped == 0:
            return 0
        order = [F.col("_file").desc(), F.col("_row").desc()]
        if self._scan.has_timestamp:
            order.insert(0, F.col("timestamp").desc())
        latest = Window.partitionBy("userId", "movieId").orderBy(*order)
        kept = frame.withColumn("_rank", F.row_number().over(latest)).filter("_rank = 1")
        messages.log_dropped_duplicates(self.label, dropped)
        self.frame, self.shuffled = kept.drop("_rank"), True
        return dropped

    def movie_counts(self) -> tuple[np.ndarray, np.ndarray]:
        counts = self._frame.groupBy("movieId").count().toPandas().sort_values("movieId")
        return counts["movieId"].to_numpy(dtype=np.int64), counts["count"].to_numpy(np.int64)

    def drop_movies(self, movie_ids: np.ndarray) -> None:
        from pyspark.sql import functions as F

        self.frame = self._frame.filter(~F.col("movieId").isin(movie_ids.tolist()))
        self._users = None

    def user_ids(self) -> np.ndarray:
        """Sorted distinct userIds (one row per user: small), kept until movies drop."""
        if self._users is None:
            frame = self._frame.select("userId").distinct().toPandas()
            self._users = np.sort(frame["userId"].to_numpy(dtype=np.int64))
        return self._users

    def write(self, user_ids: np.ndarray, movie_ids: np.ndarray, folds: pd.Series | None) -> None:
        write_ratings(
            self._frame,
            self._scan,
            user_ids,
            movie_ids,
            folds,
            self.scale,
            needs_sort=self.shuffled,
            scratch=self.scratch,
            staging=self.staging,
        )

    def release(self) -> None:
        """Drop the persisted scan (memory and disk on the executors)."""
        if self.scan is not None:
            self.scan.frame.unpersist()

    @property
    def _scan(self) -> Scan:
        assert self.scan is not None, "read first"
        return self.scan

    @property
    def _checks(self) -> Checks:
        assert self.checks is not None, "read first"
        return self.checks

    @property
    def _frame(self) -> DataFrame:
        assert self.frame is not None, "read first"
        return self.frame
