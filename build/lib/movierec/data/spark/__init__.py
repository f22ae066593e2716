"""The Spark preprocessing engine (`data.engine=spark`): ratings read, checked and indexed
by Spark, for files too large for pandas or living on a cluster.

It writes the same processed entry as the pandas engine for the same input, taking the
same steps in the same order (`steps.run`), with the same field rules (`fields`) and the
same messages (`messages`). Importing it needs no pyspark; running it does
(`require_pyspark`).

    session  SparkSettings (`data.spark`), the session's start and stop, the JVM's release
    scan     every field read as text, each row's file and place, the odd fields' texts
    checks   the checks on a scan: rows, fields, IDs, scale (one pass counts them all)
    write    indexed ratings as Parquet parts, one `ratings.parquet`, tables and meta
    engine   the steps on a Spark frame (`SparkEngine`); `build_processed`, and
             `fetch_remote_ratings` for ratings only Spark reaches (hdfs://, s3a://, …)
"""

from movierec.data.spark.engine import SparkEngine, build_processed, fetch_remote_ratings
from movierec.data.spark.session import (
    PYSPARK_MISSING,
    SparkSettings,
    require_pyspark,
    spark_session,
)

__all__ = [
    "PYSPARK_MISSING",
    "SparkEngine",
    "SparkSettings",
    "build_processed",
    "fetch_remote_ratings",
    "require_pyspark",
    "spark_session",
]
