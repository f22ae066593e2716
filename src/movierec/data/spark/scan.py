"""The scan: the ratings read by Spark with every field as text, each row's place in the
input, and the fields Spark's own conversion cannot be trusted with ("odd" fields).

A per-column fast path accepts plain decimals, which pyarrow (the pandas readers) and Spark
convert to the same value; every other field (empty, "NA", "abc", " 5", "0x10", …) is
gathered as a distinct text and judged by `fields.classify_tokens`, the readers' rules.

File order. Each row keeps its file and the `monotonically_increasing_id` taken at the scan
(its scan id: partition << 33 | row in partition). Spark cuts one file into partitions in
offset order, so (file, scan id) is file order, and per-block row counts turn a scan id into
a line number (`Positions`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from movierec.data import fields
from movierec.data.sources import RatingsFile, RatingsLayout, is_remote
from movierec.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession

CORRUPT = "_corrupt"  # the raw text of a row that does not split into the columns
ODD_TOKEN_LIMIT = 100_000  # distinct odd field texts judged per column
# A plain decimal: pyarrow and Spark both read it, rounded correctly to float32.
PLAIN_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
SPARK_TYPES = {"int64": "bigint", "float": "float"}


# ----------------------------------------------------------------------------- scan


@dataclass(frozen=True)
class Column:
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
class Scan:
    """The ratings as Spark read them, persisted, with each row's file and scan id.

    `frame` columns: per `Column` its value (Spark's conversion), `<name>__odd` (not on
    the fast path) and `<name>__token` (the field text where odd); `_file` (index into
    `files`), `_row` (scan id) and, for text files, `_corrupt`.
    """

    frame: DataFrame
    columns: list[Column]
    files: list[str]  # labels of the input files, in file order
    label: str  # the input's label (what the pandas engine names)
    layout: RatingsLayout  # what the file's layout means (header, text)
    header_line: bytes | None  # a CSV file's header line (malformed-row messages)
    delimiter: str

    @property
    def has_timestamp(self) -> bool:
        return any(c.name == "timestamp" for c in self.columns)

    @classmethod
    def read(cls, spark: SparkSession, source: RatingsFile, location: str) -> Scan:
        """Scan the ratings of `source` at `location`, persisted; `DataError` on a bad header."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        frame, header, types, header_line = _load_text_or_parquet(spark, source, location)
        files = sorted(frame.inputFiles())
        columns = [Column(name, dtype, header.index(name)) for name, dtype in types.items()]
        kinds = dict(frame.dtypes)
        selected: list[SparkColumn] = []
        for column in columns:
            selected += column_exprs(column, kinds[column.name], source.label)
        if source.form.text:
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
            source.form,
            header_line,
            source.delimiter,
        )


def _load_text_or_parquet(spark: SparkSession, source: RatingsFile, location: str):
    """(frame, header names, {name: field type}, the CSV header line or None): Parquet as
    it is; text files as strings, with a corrupt-record column for the rows that fail."""
    from pyspark.sql import types as T

    header_line = None
    if not source.form.text:  # Parquet
        frame = _load(spark.read.parquet, location, source)
        return frame, frame.columns, fields.ratings_header_types(source.label, frame.columns), None
    if source.form.header:
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
        header=source.form.header,
        sep=source.delimiter,
        quote='"',
        escape='"',
        mode="PERMISSIVE",
        columnNameOfCorruptRecord=CORRUPT,
        encoding="UTF-8",
    ).schema(schema)
    return _load(reader.csv, location, source), header, types, header_line


def column_exprs(column: Column, kind: str, label: str) -> list[SparkColumn]:
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


def input_location(source: RatingsFile, scratch: Path) -> str:
    """Where Spark reads the ratings: the source's own location as a URI, or a copy of a
    zip member in `scratch`."""
    if source.location:
        return _spark_location(source.location)
    return _extract(source, scratch)


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
class Positions:
    """Turns a row's (file, scan id) into its 0-based row in the input and in its file.

    Built from per-block row counts, a block being the rows of one file in one partition:
    a block's rows have consecutive scan ids, and blocks in (file, first id) order are in
    file order.
    """

    blocks: pd.DataFrame  # _file, first, n, start (row of the input), file_start

    @classmethod
    def from_blocks(cls, blocks: pd.DataFrame) -> Positions:
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


# ----------------------------------------------------------------------------- odd fields


@dataclass
class Odd:
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


def gather_odd(scan: Scan, column: Column) -> Odd:
    """The distinct odd texts of `column` in order of first appearance, judged by the
    readers' rules; `DataError` if there are over `ODD_TOKEN_LIMIT` and all convert."""
    from pyspark.sql import functions as F

    frame = scan.frame
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
    odd = Odd(tokens, judged)
    if len(tokens) > ODD_TOKEN_LIMIT and judged.converts.all():
        raise DataError(
            f"{scan.label}: column '{column.name}' has more than {ODD_TOKEN_LIMIT:,} "
            "distinct values that are not plain decimals (e.g. "
            f"{tokens['token'].iloc[0]!r}); the Spark engine judges at most that many, "
            "rewrite them as plain decimals"
        )
    return odd
