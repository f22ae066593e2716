"""The Spark preprocessing engine (`data.engine=spark`): ratings read, checked and indexed
by Spark, for files too large for pandas or living on a cluster.

`build_processed` writes the same processed entry as the pandas engine
(`preprocess.build_ratings_data` + `RatingsData.save`) for the same input, by the same
rules and with the same error messages (`fields` and `messages`, which the pandas readers
use too):

1. scan: every field is read as text. A per-column fast path accepts plain decimals, which
   pyarrow (the pandas readers) and Spark convert to the same value; every other field
   ("odd": empty, "NA", "abc", " 5", "0x10", …) is gathered as a distinct text and judged
   by `fields.classify_tokens`, the pandas readers' rules.
2. checks, in the pandas engine's order: malformed rows, unconvertible values, missing/NaN
   values (counted per column and logged), documented counts, negative IDs, rating scale.
3. duplicates: one rating per (userId, movieId), the latest by timestamp, else the last in
   file order.
4. index maps: the sorted distinct ids are collected to the driver (one row per user or
   movie, small) and joined back as broadcasts; normalized ratings in float32.
5. write: Spark writes Parquet parts in file order and they are concatenated into
   `ratings.parquet`; users, movies and meta (small) are written like the pandas engine.

File order. Error line numbers, the duplicate tie-break and the output row order (which the
splits permute) follow the input's order. Each row keeps its file and the
`monotonically_increasing_id` taken at the scan (partition << 33 | row in partition). Spark
cuts one file into partitions in offset order, so (file, id) is file order, and per-block
row counts turn an id into a line number.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.data import fields, messages, validation
from movierec.data.download import archive_sha256
from movierec.data.preprocess import (
    keyed_folds,
    node_tables,
    report,
    verify_counts,
)
from movierec.data.processed import RATINGS_FILE, save_node_tables
from movierec.data.sources import (
    DataSettings,
    FetchedSource,
    RatingsFile,
    SideTables,
    is_remote,
    ratings_file,
    read_side_tables,
)
from movierec.errors import ConfigError, DataError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

PYSPARK_MISSING = "data.engine=spark needs pyspark: pip install 'movierec[spark]'"
SPARK_KEYS = ("master", "driver_memory", "log_level", "conf")
# Settings the engine needs whatever the user adds: no web UI (no port to bind), no
# progress bars in the output, Arrow for the small pandas <-> Spark hand-overs.
BASE_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# JVM logging: Spark's own messages at `log_level`; start-up chatter (no native Hadoop,
# hostname resolution) and the advice on task sizes (the small pandas hand-overs travel
# inside tasks) only if it is an error. The JVM's one "Using incubator modules" line comes
# from Spark's launcher and cannot be turned off.
LOG4J2 = """\
rootLogger.level = {level}
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = error
logger.tasks.name = org.apache.spark.scheduler.TaskSetManager
logger.tasks.level = error
"""
CORRUPT = "_corrupt"  # the raw text of a row that does not split into the columns
ODD_TOKEN_LIMIT = 100_000  # distinct odd field texts judged per column
# A plain decimal: pyarrow and Spark both read it, rounded correctly to float32.
PLAIN_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
SPARK_TYPES = {"int64": "bigint", "float": "float"}
# The master URLs Spark accepts; anything else is refused before a JVM starts.
MASTER_URL = re.compile(
    r"local(\[([1-9][0-9]*|\*)(,[1-9][0-9]*)?\])?|local-cluster\[[^\]]+\]"
    r"|spark://\S+|yarn|k8s://\S+"
)


def require_pyspark() -> None:
    """`ConfigError` saying how to install pyspark if it cannot be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(PYSPARK_MISSING) from None


@dataclass(frozen=True)
class SparkSettings:
    """`data.spark`: master URL, driver heap, Spark's log level, extra Spark settings.

    `driver_memory` is the driver JVM's heap (`spark.driver.memory`); in local mode it is
    also the executors' memory. Spark's own default, 1g, runs out of memory caching 25M
    ratings in local mode; 4g does not.
    """

    master: str = "local[*]"
    driver_memory: str = "4g"
    log_level: str = "WARN"
    conf: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SparkSettings:
        unknown = sorted(set(values) - set(SPARK_KEYS))
        if unknown:
            raise ConfigError(
                f"data.spark.{unknown[0]} is not a setting; expected one of {', '.join(SPARK_KEYS)}"
            )
        conf = values.get("conf") or {}
        if not isinstance(conf, Mapping):
            raise ConfigError(f"data.spark.conf={conf!r}: expected a mapping of Spark settings")
        master = str(values.get("master") or cls.master)
        if not MASTER_URL.fullmatch(master):
            raise ConfigError(
                f"data.spark.master={master!r} is not a Spark master URL; expected local[N], "
                "local[*], spark://host:port, yarn or k8s://host:port"
            )
        return cls(
            master=master,
            driver_memory=str(values.get("driver_memory") or cls.driver_memory),
            log_level=str(values.get("log_level") or cls.log_level).upper(),
            conf=_flatten(conf),
        )


def _flatten(conf: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"spark": {"driver": {"memory": "4g"}}} (Hydra's `+data.spark.conf.spark.driver.memory=4g`)
    → {"spark.driver.memory": "4g"}."""
    flat: dict[str, str] = {}
    for key, value in conf.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


@contextlib.contextmanager
def spark_session(settings: SparkSettings, keep_jvm: bool = False) -> Iterator[SparkSession]:
    """The active SparkSession if there is one (a notebook's, a test's), else a new one for
    `settings`, stopped on exit, with its JVM unless `keep_jvm`. A Spark that does not
    start (no Java, master refused) is a `ConfigError`."""
    require_pyspark()
    warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per connection
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    with tempfile.TemporaryDirectory(prefix="movierec-spark-") as folder:
        log4j = Path(folder) / "log4j2.properties"
        log4j.write_text(LOG4J2.format(level=settings.log_level.lower()))
        conf = dict(BASE_CONF)
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={log4j.as_uri()}"
        conf["spark.driver.memory"] = settings.driver_memory
        conf.update(settings.conf)
        builder = SparkSession.builder.master(settings.master).appName("movierec-preprocess")
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            spark = builder.getOrCreate()
            spark.sparkContext.setLogLevel(settings.log_level)
        except Exception as err:  # Py4J / PySpark errors: no Java, master refused, …
            reason = " ".join(str(err).split())[:300]
            if "JAVA_GATEWAY_EXITED" in reason:
                reason += " (Spark needs Java 17 or later on PATH or in JAVA_HOME)"
            raise ConfigError(
                f"Spark did not start (data.spark.master={settings.master!r}): {reason}"
            ) from None
    try:
        yield spark
    finally:
        spark.stop()
        if not keep_jvm:
            _release_jvm()


def _release_jvm() -> None:
    """End PySpark's JVM, which otherwise lives as long as Python and keeps the driver heap
    (gigabytes after a large build) through training. A later session starts a new one."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None or getattr(gateway, "proc", None) is None:
        return
    SparkContext._gateway = None
    SparkContext._jvm = None
    with contextlib.suppress(Exception):
        gateway.shutdown()
    gateway.proc.stdin.close()  # PySpark's gateway server exits when its stdin closes
    try:
        gateway.proc.wait(timeout=30)
    except Exception:
        gateway.proc.kill()


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


def build_processed(settings: DataSettings, fetched: FetchedSource, staging: Path) -> None:
    """Write the processed entry of `fetched` into the empty folder `staging` with Spark.

    Raises `DataError` / `ConfigError` with the pandas engine's messages on bad input.
    """
    source = ratings_file(settings, fetched)
    side = read_side_tables(settings, fetched)  # small files: pandas, as in the pandas engine
    scratch = Path(tempfile.mkdtemp(prefix=".spark-", dir=staging.parent))
    try:
        with spark_session(SparkSettings.from_mapping(settings.spark)) as spark:
            location = _spark_location(source.location) if source.location else None
            location = location or _extract(source, scratch)
            scan = _Scan.read(spark, source, location)
            try:
                _Build(settings, fetched, side, scan, scratch, staging).run()
            finally:
                scan.frame.unpersist()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ----------------------------------------------------------------------------- scan


@dataclass(frozen=True)
class _Column:
    """One ratings column: its name, type and position in the file (pyarrow's messages)."""

    name: str
    dtype: pa.DataType
    index: int

    @property
    def value(self) -> str:
        return self.name

    @property
    def odd(self) -> str:
        return f"{self.name}__odd"

    @property
    def token(self) -> str:
        return f"{self.name}__token"


@dataclass
class _Scan:
    """The ratings as Spark read them, persisted, with each row's file and scan id.

    `frame` columns: per `_Column` its value (Spark's conversion), `<name>__odd` (not on
    the fast path) and `<name>__token` (the field text where odd); `_file` (index into
    `files`), `_row` (scan id) and, for text files, `_corrupt`.
    """

    frame: DataFrame
    columns: list[_Column]
    files: list[str]  # labels of the input files, in file order
    label: str  # the input's label (what the pandas engine names)
    layout: str
    header_line: bytes | None  # a CSV file's header line (malformed-row messages)
    delimiter: str

    @classmethod
    def read(cls, spark: SparkSession, source: RatingsFile, location: str) -> _Scan:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        header_line = None
        if source.layout == "parquet":
            frame = _load(spark.read.parquet, location, source)
            types = fields.ratings_header_types(source.label, frame.columns)
            header = frame.columns
        else:
            if source.layout == "csv":
                header_line = _first_line(spark, location, source)
                header = fields.header_columns(source.label, header_line, fields.RATINGS_HEADER)
                types = fields.ratings_header_types(source.label, header)
            else:
                header = list(fields.DELIMITED_RATING_NAMES)
                types = dict(fields.RATING_TYPES, timestamp=fields.TIMESTAMP_TYPE)
            schema = T.StructType(
                [T.StructField(name, T.StringType()) for name in header]
                + [T.StructField(CORRUPT, T.StringType())]
            )
            reader = spark.read.options(
                header=source.layout == "csv",
                sep=source.delimiter,
                quote='"',
                escape='"',
                mode="PERMISSIVE",
                columnNameOfCorruptRecord=CORRUPT,
                encoding="UTF-8",
            ).schema(schema)
            frame = _load(reader.csv, location, source)
        files = sorted(frame.inputFiles())
        columns = [_Column(name, dtype, header.index(name)) for name, dtype in types.items()]
        kinds = dict(frame.dtypes)
        selected: list[Column] = []
        for column in columns:
            selected += _column_exprs(column, kinds[column.name], source.label)
        if source.layout != "parquet":
            selected.append(F.col(CORRUPT))
        selected.append(F.monotonically_increasing_id().alias("_row"))
        if len(files) > 1:  # (file, scan id) orders rows across files
            selected.append(F.input_file_name().alias("_path"))
        frame = frame.select(*selected)
        if len(files) > 1:
            index = spark.createDataFrame(
                pd.DataFrame({"_path": files, "_file": np.arange(len(files), dtype=np.int32)})
            )
            frame = frame.join(F.broadcast(index), "_path").drop("_path")
        else:
            frame = frame.withColumn("_file", F.lit(0))
        labels = [_local_label(f) for f in files] if len(files) > 1 else [source.label]
        return cls(
            frame.persist(StorageLevel.MEMORY_AND_DISK),
            columns,
            labels,
            source.label,
            source.layout,
            header_line,
            source.delimiter,
        )


def _column_exprs(column: _Column, kind: str, label: str) -> list[Column]:
    """Value, odd flag and odd text of one column read as Spark type `kind`."""
    from pyspark.sql import functions as F

    raw = F.col(f"`{column.name}`")
    target = SPARK_TYPES[str(column.dtype)]
    is_int = pa.types.is_integer(column.dtype)
    numeric = kind in ("tinyint", "smallint", "int", "bigint", "float", "double") or (
        kind.startswith("decimal")
    )
    if kind == "string":
        value = raw.try_cast(target)
        if is_int:  # canonical decimal integers: the text is the value's own rendering
            fast = value.isNotNull() & (value.cast("string") == raw)
        else:
            fast = value.isNotNull() & raw.rlike(PLAIN_FLOAT)
        token = F.coalesce(raw, F.lit(""))
    elif numeric:  # Parquet numbers: odd = null, NaN or (for IDs) not a whole number
        value = raw.try_cast(target)
        fast = raw.isNotNull() & value.isNotNull()
        if kind in ("float", "double"):
            fast = fast & ~F.isnan(raw)
            if is_int:
                fast = fast & (raw == F.floor(raw))
        token = F.coalesce(raw.cast("string"), F.lit(""))
    else:
        raise DataError(
            f"{label}: column '{column.name}' holds {kind} values; expected "
            f"{'integers' if is_int else 'numbers'}"
        )
    return [
        value.alias(column.value),
        (~fast).alias(column.odd),
        F.when(~fast, token).alias(column.token),
    ]


def _load(read: Any, location: str, source: RatingsFile) -> DataFrame:
    """`read(location)`, with Spark's "path does not exist" as the pandas engine's error."""
    try:
        return read(location)
    except Exception as err:
        if "PATH_NOT_FOUND" in str(err) or "does not exist" in str(err):
            raise DataError(f"{source.label}: ratings file not found") from None
        raise


def _first_line(spark: SparkSession, location: str, source: RatingsFile) -> bytes:
    """The first line of the (first) input file, for its header."""
    text = _load(spark.read.text, location, source)
    files = sorted(text.inputFiles())
    rows = spark.read.text(files[0]).limit(1).collect() if files else []
    return rows[0][0].encode() if rows else b""


def _extract(source: RatingsFile, scratch: Path) -> str:
    """Copy a zip member into `scratch` (Spark does not read inside zips); its URI."""
    assert source.ref is not None
    target = scratch / "ratings-input" / source.label.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True)
    with source.ref.opener() as member, target.open("wb") as out:
        shutil.copyfileobj(member, out, 1 << 22)
    return target.as_uri()


def _spark_location(location: str) -> str:
    """A local path as an absolute file:// URI (else Spark may resolve it on HDFS)."""
    if is_remote(location) or location.startswith("file:"):
        return location
    return Path(location).expanduser().resolve().as_uri()


def _local_label(uri: str) -> str:
    return uri.removeprefix("file://") if uri.startswith("file:///") else uri


# ----------------------------------------------------------------------------- positions


@dataclass
class _Positions:
    """Turns a row's (file, scan id) into its 0-based row in the input and in its file.

    Built from per-block row counts, a block being the rows of one file in one partition:
    a block's rows have consecutive scan ids, and blocks in (file, first id) order are in
    file order.
    """

    blocks: pd.DataFrame  # _file, first, n, start (row of the input), file_start

    @classmethod
    def from_blocks(cls, blocks: pd.DataFrame) -> _Positions:
        blocks = blocks.sort_values(["_file", "first"], ignore_index=True)
        blocks["start"] = blocks["n"].cumsum() - blocks["n"]
        blocks["file_start"] = blocks.groupby("_file")["start"].transform("min")
        return cls(blocks)

    @property
    def total(self) -> int:
        return int(self.blocks["n"].sum())

    def row(self, file: int, scan_id: int) -> int:
        """0-based row in the whole input (all files in order)."""
        mine = self.blocks[(self.blocks["_file"] == file) & (self.blocks["first"] <= scan_id)]
        block = mine.iloc[-1]
        return int(block["start"] + scan_id - block["first"])

    def row_in_file(self, file: int, scan_id: int) -> int:
        mine = self.blocks[self.blocks["_file"] == file]
        return self.row(file, scan_id) - int(mine["file_start"].iloc[0])


# ----------------------------------------------------------------------------- build


@dataclass
class _Odd:
    """The distinct odd texts of one column, judged: what `fields.classify_tokens` says."""

    tokens: pd.DataFrame  # token, n, file, scan_id, spark_value; in file order
    judged: fields.TokenClasses

    def first(self, mask: np.ndarray) -> tuple[int, int, str] | None:
        """(file, scan id, text) of the earliest field among the flagged texts."""
        hits = np.flatnonzero(mask)
        if len(hits) == 0:
            return None
        row = self.tokens.iloc[hits[0]]
        return int(row["file"]), int(row["scan_id"]), str(row["token"])

    def count(self, mask: np.ndarray) -> int:
        return int(self.tokens["n"].to_numpy()[mask].sum())

    def replacements(self) -> dict[str, Any]:
        """Texts that convert but that Spark reads differently (e.g. "0x10"): text → value."""
        valid = self.judged.converts
        spark = self.tokens["spark_value"].to_numpy()
        differ = valid & ~(pd.notna(spark) & (spark == self.judged.values))
        return {
            str(t): v.item()
            for t, v in zip(
                self.tokens["token"].to_numpy()[differ], self.judged.values[differ], strict=True
            )
        }


@dataclass
class _Build:
    """One Spark build: checks in the pandas engine's order, then index and write."""

    settings: DataSettings
    fetched: FetchedSource
    side: SideTables
    scan: _Scan
    scratch: Path
    staging: Path

    def run(self) -> None:
        from pyspark.sql import functions as F

        scan, label, scale = self.scan, self.scan.label, self.settings.scale
        positions, stats = self._block_stats()
        if positions.total == 0:
            if scan.layout == "csv":
                raise messages.no_rows_error(label)
            raise messages.empty_file_error(label)
        odd = self._check_fields(positions, stats)
        frame = self._with_replacements(scan.frame, odd)

        user_ids = self._distinct(frame, "userId")
        if self.settings.spec is not None and self.settings.verify_counts:
            movies_file = self.side.movies
            verify_counts(
                self.settings.spec,
                label,
                ratings=positions.total,
                users=len(user_ids),
                catalog_movies=len(movies_file) if movies_file is not None else None,
            )
        self._check_values(frame, positions, stats, odd)

        frame, duplicates = self._drop_duplicates(frame)
        movie_counts = (
            frame.groupBy("movieId").count().toPandas().sort_values("movieId", ignore_index=True)
        )
        movies, unknown, catalog_movies = None, 0, 0
        if self.side.movies is not None:
            movies = validation.check_unique_movies(self.side.movies, label)
            catalog_movies = len(movies)
            validation.check_missing_movie_policy(self.settings.missing_movies)
            rated = movie_counts["movieId"].to_numpy()
            known = np.isin(rated, movies["movieId"].to_numpy())
            if not known.all():
                unknown_ids = rated[~known]
                movies = validation.resolve_unknown_movies(
                    movies,
                    unknown_ids,
                    int(movie_counts["count"].to_numpy()[~known].sum()),
                    self.settings.missing_movies,
                    label,
                )
                unknown = len(unknown_ids)
                if self.settings.missing_movies == "drop":
                    movie_counts = movie_counts[known].reset_index(drop=True)
                    frame = frame.filter(~F.col("movieId").isin(unknown_ids.tolist()))
                    user_ids = self._distinct(frame, "userId")
        n_ratings = int(movie_counts["count"].sum())
        if n_ratings == 0:
            raise messages.no_ratings_error(label)
        movie_ids = movie_counts["movieId"].to_numpy(dtype=np.int64)

        self._write_ratings(frame, user_ids, movie_ids, needs_sort=duplicates > 0)
        users, movie_table, genres = node_tables(user_ids, movie_ids, movies, self.side)
        meta = report(
            self.settings,
            self.fetched,
            label,
            raw_ratings=positions.total,
            duplicates_dropped=duplicates,
            unknown_movies=unknown,
            n_ratings=n_ratings,
            catalog_movies=catalog_movies,
            n_users=len(user_ids),
            n_movies=len(movie_ids),
        )
        save_node_tables(self.staging, users, movie_table, genres, scale, meta)

    # -- checks

    def _block_stats(self) -> tuple[_Positions, pd.DataFrame]:
        """One pass over the scan: per-block row counts, odd fields, and on plain fields the
        negative IDs and ratings outside the scale (count and first scan id of each)."""
        from pyspark.sql import functions as F

        scan = self.scan
        low, high = self.settings.scale
        aggregates = [F.count(F.lit(1)).alias("n"), F.min("_row").alias("first")]
        for column in scan.columns:
            aggregates.append(F.sum(F.col(column.odd).cast("long")).alias(column.odd))
        for name, flagged in self._value_flags(low, high).items():
            aggregates.append(F.sum(flagged.cast("long")).alias(f"{name}__n"))
            aggregates.append(F.min(F.when(flagged, F.col("_row"))).alias(f"{name}__first"))
        if scan.layout != "parquet":
            aggregates.append(F.count(CORRUPT).alias("corrupt"))
        partition = F.shiftright(F.col("_row"), 33)
        blocks = scan.frame.groupBy("_file", partition.alias("_partition")).agg(*aggregates)
        stats = blocks.toPandas()
        return _Positions.from_blocks(stats[["_file", "first", "n"]].copy()), stats

    def _value_flags(self, low: float, high: float) -> dict[str, Column]:
        """Negative IDs and out-of-scale ratings among plain fields (as the pandas engine:
        float32 ratings against the bounds as float32)."""
        from pyspark.sql import functions as F

        flags = {name: ~F.col(f"{name}__odd") & (F.col(name) < 0) for name in ("userId", "movieId")}
        rating = F.col("rating")
        outside = (rating < F.lit(low).cast("float")) | (rating > F.lit(high).cast("float"))
        flags["rating"] = ~F.col("rating__odd") & outside
        return flags

    def _check_fields(self, positions: _Positions, stats: pd.DataFrame) -> dict[str, _Odd]:
        """Malformed rows, then unconvertible fields, then missing/NaN fields, as
        the readers order them; returns the judged odd texts per column."""
        scan = self.scan
        if scan.layout != "parquet" and int(stats["corrupt"].sum()) > 0:
            self._raise_malformed()
        odd = {
            column.name: self._judge_odd(column)
            for column in scan.columns
            if int(stats[column.odd].sum()) > 0
        }
        missing = {
            c.name: (odd[c.name].count(odd[c.name].judged.missing) if c.name in odd else 0)
            for c in scan.columns
        }
        level = logging.WARNING if any(missing.values()) else logging.INFO
        log.log(level, "%s: null/NaN values per column: %s", scan.label, missing)
        refused = {
            name: o.judged.refusal for name, o in odd.items() if o.judged.refusal is not None
        }
        if refused:
            self._raise_first(
                odd, positions, lambda judged: judged.not_a_number,
                lambda path, line, column, text: messages.bad_value_error(
                    path, line, column.name, text, column.dtype
                ),
            )  # fmt: skip
            name = next(c.name for c in scan.columns if c.name in refused)
            hit = odd[name].first(~odd[name].judged.converts & ~odd[name].judged.missing)
            file = hit[0] if hit else 0
            raise messages.cannot_parse_error(scan.files[file], refused[name])
        self._raise_first(
            odd, positions, lambda judged: judged.missing,
            lambda path, line, column, _text: messages.missing_value_error(
                path, line, column.name, column.dtype
            ),
        )  # fmt: skip
        return odd

    def _raise_first(self, odd, positions: _Positions, mask, error) -> None:
        """Raise `error(path, line, column, text)` for the first column (in file order) with
        a text that `mask(judged)` selects, at that text's first row."""
        for column in self.scan.columns:
            if column.name in odd:
                hit = odd[column.name].first(mask(odd[column.name].judged))
                if hit is not None:
                    file, scan_id, text = hit
                    line = self._line(positions, file, scan_id)
                    raise error(self.scan.files[file], line, column, text)

    def _line(self, positions: _Positions, file: int, scan_id: int) -> int:
        header = 1 if self.scan.layout == "csv" else 0
        return positions.row_in_file(file, scan_id) + 1 + header

    def _raise_malformed(self) -> None:
        """The pandas reader's message for the first row that does not split into columns."""
        from pyspark.sql import functions as F

        scan = self.scan
        row = (
            scan.frame.filter(F.col(CORRUPT).isNotNull())
            .orderBy("_file", "_row")
            .select(CORRUPT, "_file")
            .first()
        )
        assert row is not None
        text = row[CORRUPT].encode()
        if scan.layout == "csv":
            assert scan.header_line is not None
            data = scan.header_line.rstrip(b"\r\n") + b"\n" + text + b"\n"
            names = None
        else:
            data, names = text + b"\n", list(fields.DELIMITED_RATING_NAMES)
        fields.check_structure(
            scan.files[row["_file"]], data, names=names, delimiter=scan.delimiter
        )
        # pyarrow splits the row after all (a quoting corner): its fields are judged as usual.

    def _judge_odd(self, column: _Column) -> _Odd:
        from pyspark.sql import functions as F

        frame = self.scan.frame
        grouped = (
            frame.filter(F.col(column.odd))
            .groupBy(column.token)
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.min(F.struct("_file", "_row")).alias("at"),
                F.first(column.value).alias("spark_value"),
            )
            .orderBy("at")
            .limit(ODD_TOKEN_LIMIT + 1)
            .collect()
        )
        tokens = pd.DataFrame(
            {
                "token": [r[column.token] for r in grouped],
                "n": [r["n"] for r in grouped],
                "file": [r["at"]["_file"] for r in grouped],
                "scan_id": [r["at"]["_row"] for r in grouped],
                "spark_value": pd.array([r["spark_value"] for r in grouped], dtype=object),
            }
        )
        judged = fields.classify_tokens(list(tokens["token"]), column.dtype, column.index)
        odd = _Odd(tokens, judged)
        if len(tokens) > ODD_TOKEN_LIMIT and judged.converts.all():
            raise DataError(
                f"{self.scan.label}: column '{column.name}' has more than {ODD_TOKEN_LIMIT:,} "
                "distinct values that are not plain decimals (e.g. "
                f"{tokens['token'].iloc[0]!r}); the Spark engine judges at most that many, "
                "rewrite them as plain decimals"
            )
        return odd

    def _with_replacements(self, frame: DataFrame, odd: dict[str, _Odd]) -> DataFrame:
        """Odd texts Spark converts differently from pyarrow get pyarrow's value."""
        from pyspark.sql import functions as F

        for column in self.scan.columns:
            if column.name not in odd:
                continue
            mapping = odd[column.name].replacements()
            if mapping:
                spark_type = SPARK_TYPES[str(column.dtype)]
                lookup = F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv])
                fixed = F.when(F.col(column.odd), lookup[F.col(column.token)].cast(spark_type))
                frame = frame.withColumn(column.value, fixed.otherwise(F.col(column.value)))
        return frame

    def _check_values(
        self,
        frame: DataFrame,
        positions: _Positions,
        stats: pd.DataFrame,
        odd: dict[str, _Odd],
    ) -> None:
        """Negative IDs (userId, then movieId), then ratings outside the scale."""
        low, high = self.settings.scale
        label = self.scan.label
        for name in ("userId", "movieId", "rating"):
            count = int(stats[f"{name}__n"].sum())
            firsts = stats.loc[stats[f"{name}__n"] > 0, ["_file", f"{name}__first"]]
            candidates = [(int(f), int(r)) for f, r in firsts.itertuples(index=False)]
            if name in odd:
                judged = odd[name].judged
                values = judged.values
                if name == "rating":
                    as_f32 = values.astype(np.float32)
                    flagged = judged.converts & (
                        (as_f32 < np.float32(low)) | (as_f32 > np.float32(high))
                    )
                else:
                    flagged = judged.converts & (values < 0)
                count += odd[name].count(flagged)
                hit = odd[name].first(flagged)
                if hit is not None:
                    candidates.append(hit[:2])
            if count == 0:
                continue
            file, scan_id = min(candidates)
            row = self._row_values(frame, file, scan_id)
            index = positions.row(file, scan_id)
            if name == "rating":
                raise messages.outside_scale_error(
                    label,
                    np.float32(row["rating"]),
                    index,
                    row["userId"],
                    row["movieId"],
                    (low, high),
                    count,
                )
            raise messages.negative_id_error(label, name, index, row[name])

    def _row_values(self, frame: DataFrame, file: int, scan_id: int) -> dict[str, Any]:
        from pyspark.sql import functions as F

        found = frame.filter((F.col("_file") == file) & (F.col("_row") == scan_id)).first()
        assert found is not None
        return found.asDict()

    # -- duplicates, maps, output

    def _drop_duplicates(self, frame: DataFrame) -> tuple[DataFrame, int]:
        """Keep the latest rating of each (userId, movieId) by timestamp, then file order."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        pairs = frame.groupBy("userId", "movieId").count().filter(F.col("count") > 1)
        dropped = int(pairs.agg(F.sum(F.col("count") - 1)).first()[0] or 0)
        if dropped == 0:
            return frame, 0
        order = [F.col("_file").desc(), F.col("_row").desc()]
        if any(c.name == "timestamp" for c in self.scan.columns):
            order.insert(0, F.col("timestamp").desc())
        latest = Window.partitionBy("userId", "movieId").orderBy(*order)
        kept = frame.withColumn("_rank", F.row_number().over(latest)).filter("_rank = 1")
        messages.log_dropped_duplicates(self.scan.label, dropped)
        return kept.drop("_rank"), dropped

    @staticmethod
    def _distinct(frame: DataFrame, column: str) -> np.ndarray:
        """Sorted distinct values of an ID column (one per user or movie: small)."""
        ids = frame.select(column).distinct().toPandas()[column].to_numpy(dtype=np.int64)
        return np.sort(ids)

    def _write_ratings(
        self, frame: DataFrame, user_ids: np.ndarray, movie_ids: np.ndarray, needs_sort: bool
    ) -> None:
        """Index, normalize and write `ratings.parquet` in file order.

        The maps go to Spark as broadcasts, which keep the scan's row order; a frame that
        went through a shuffle (duplicates removed) or spans several files is sorted back
        into (file, scan id) order first.
        """
        from pyspark.sql import functions as F

        spark = frame.sparkSession
        scan = self.scan
        user_map = spark.createDataFrame(
            pd.DataFrame({"userId": user_ids, "user": np.arange(len(user_ids), dtype=np.int64)})
        )
        movie_map = spark.createDataFrame(
            pd.DataFrame({"movieId": movie_ids, "movie": np.arange(len(movie_ids), dtype=np.int64)})
        )
        low, high = self.settings.scale
        rating = F.col("rating").cast("float")
        # The pandas engine computes (stars - low) / (high - low) in float32; Spark subtracts
        # in float32 and divides in float64, which rounds to the same float32.
        norm = ((rating - F.lit(low).cast("float")) / F.lit(high - low).cast("float")).cast("float")
        out = frame.join(F.broadcast(user_map), "userId").join(F.broadcast(movie_map), "movieId")
        columns = [F.col("user"), F.col("movie"), rating.alias("rating"), norm.alias("rating_norm")]
        if any(c.name == "timestamp" for c in scan.columns):
            columns.append(F.col("timestamp").cast("long").alias("timestamp"))
        if self.side.folds is not None:
            keyed = keyed_folds(self.side.folds, scan.label).reset_index()
            folds = spark.createDataFrame(keyed.astype({"fold": np.int8}))
            out = out.join(F.broadcast(folds), ["userId", "movieId"], "left")
            columns.append(F.col("fold").cast("byte").alias("fold"))
            if out.filter(F.col("fold").isNull()).limit(1).count():
                raise messages.unfolded_ratings_error(scan.label)
        if needs_sort or len(scan.files) > 1:
            out = out.orderBy("_file", "_row")  # last, so that no rule drops it
        parts = self.scratch / "ratings-parts"
        out.select(*columns).write.parquet(parts.as_uri())
        _concatenate_parts(parts, self.staging / RATINGS_FILE)


def _concatenate_parts(parts: Path, target: Path) -> None:
    """Spark's part files, in part order, as one Parquet file with the pandas engine's
    column types. Streams record batches: memory stays at one batch.

    One file, because the processed entry is the pandas engine's: `RatingsData.load`, the
    tracking layer and the served model all read `ratings.parquet` as a file.
    """
    files = sorted(parts.glob("part-*.parquet"), key=lambda p: int(p.name.split("-")[1]))
    first = pq.read_schema(files[0]) if files else None
    names = first.names if first is not None else []
    types = {
        "user": pa.int64(),
        "movie": pa.int64(),
        "rating": pa.float32(),
        "rating_norm": pa.float32(),
        "timestamp": pa.int64(),
        "fold": pa.int8(),
    }
    schema = pa.schema([(name, types[name]) for name in names])
    with pq.ParquetWriter(target, schema) as writer:
        for file in files:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=1 << 20):
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))
