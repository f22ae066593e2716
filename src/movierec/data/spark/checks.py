"""The Spark engine's checks on a scan, with the pandas engine's messages (`messages`).

One pass over the scan (`Checks.survey`) counts, per block, the rows, the odd fields, and
among plain fields the negative IDs and the ratings outside the scale, with the first scan
id of each; the checks then look at the few rows those counts point to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from movierec.data import fields, messages
from movierec.data.spark.scan import CORRUPT, SPARK_TYPES, Odd, Positions, Scan, gather_odd

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

ID_COLUMNS = ("userId", "movieId")


@dataclass
class Checks:
    """The checks on one scan; `odd` holds each column's judged odd texts once
    `check_fields` ran.

    `stats` has one row per block (`_file`, `_partition`): `n` rows, `first` scan id, per
    column `<name>__odd` (odd fields), per checked column `<name>__n` and `<name>__first`
    (flagged plain fields and the first one's scan id) and, for text files, `corrupt`.
    """

    scan: Scan
    scale: tuple[float, float]
    positions: Positions
    stats: pd.DataFrame
    odd: dict[str, Odd] = field(default_factory=dict)

    @classmethod
    def survey(cls, scan: Scan, scale: tuple[float, float]) -> Checks:
        """One pass over `scan` for every count the checks need."""
        from pyspark.sql import functions as F

        aggregates = [F.count(F.lit(1)).alias("n"), F.min("_row").alias("first")]
        for column in scan.columns:
            aggregates.append(F.sum(F.col(column.odd).cast("long")).alias(column.odd))
        for name, flagged in _value_flags(*scale).items():
            aggregates.append(F.sum(flagged.cast("long")).alias(f"{name}__n"))
            aggregates.append(F.min(F.when(flagged, F.col("_row"))).alias(f"{name}__first"))
        if scan.layout.text:
            aggregates.append(F.count(CORRUPT).alias("corrupt"))
        partition = F.shiftright(F.col("_row"), 33)
        blocks = scan.frame.groupBy("_file", partition.alias("_partition")).agg(*aggregates)
        stats = blocks.toPandas()
        return cls(scan, scale, Positions.from_blocks(stats[["_file", "first", "n"]].copy()), stats)

    def check_rows(self) -> None:
        """A file without rows: the readers' "no data rows" (CSV) or "file is empty"."""
        if self.positions.total == 0:
            if self.scan.layout.header:
                raise messages.no_rows_error(self.scan.label)
            raise messages.empty_file_error(self.scan.label)

    def check_fields(self) -> None:
        """Malformed rows, then fields that do not convert, then missing/NaN fields, in the
        readers' order; keeps the judged odd texts per column in `odd`."""
        scan, stats = self.scan, self.stats
        if scan.layout.text and int(stats["corrupt"].sum()) > 0:
            self._raise_malformed()
        odd = self.odd
        for column in scan.columns:
            if int(stats[column.odd].sum()) > 0:
                odd[column.name] = gather_odd(scan, column)
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
                lambda judged: judged.not_a_number,
                lambda path, line, column, text: messages.bad_value_error(
                    path, line, column.name, text, column.dtype
                ),
            )  # fmt: skip
            name = next(c.name for c in scan.columns if c.name in refused)
            hit = odd[name].first(~odd[name].judged.converts & ~odd[name].judged.missing)
            file = hit[0] if hit else 0
            raise messages.cannot_parse_error(scan.files[file], refused[name])
        self._raise_first(
            lambda judged: judged.missing,
            lambda path, line, column, _text: messages.missing_value_error(
                path, line, column.name, column.dtype
            ),
        )  # fmt: skip

    def with_replacements(self) -> DataFrame:
        """The scan, where Spark converted an odd text differently from pyarrow, with
        pyarrow's value."""
        from pyspark.sql import functions as F

        frame = self.scan.frame
        for column in self.scan.columns:
            if column.name not in self.odd:
                continue
            mapping = self.odd[column.name].replacements()
            if mapping:
                spark_type = SPARK_TYPES[str(column.dtype)]
                lookup = F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv])
                fixed = F.when(F.col(column.odd), lookup[F.col(column.token)].cast(spark_type))
                frame = frame.withColumn(column.value, fixed.otherwise(F.col(column.value)))
        return frame

    def check_ids(self, frame: DataFrame) -> None:
        """The first negative userId, else movieId, of `frame` (the scan with replacements)."""
        for name in ID_COLUMNS:
            found = self._first_flagged(name, lambda values: values < 0)
            if found is not None:
                file, scan_id = found[1]
                row = _row_values(frame, file, scan_id)
                index = self.positions.row(file, scan_id)
                raise messages.negative_id_error(self.scan.label, name, index, row[name])

    def check_scale(self, frame: DataFrame) -> None:
        """The first rating of `frame` outside the scale, compared in float32 as pandas does."""
        low, high = self.scale

        def outside(values: np.ndarray) -> np.ndarray:
            as_f32 = values.astype(np.float32)
            return (as_f32 < np.float32(low)) | (as_f32 > np.float32(high))

        found = self._first_flagged("rating", outside)
        if found is not None:
            count, (file, scan_id) = found
            row = _row_values(frame, file, scan_id)
            raise messages.outside_scale_error(
                self.scan.label,
                np.float32(row["rating"]),
                self.positions.row(file, scan_id),
                row["userId"],
                row["movieId"],
                self.scale,
                count,
            )

    def _first_flagged(
        self, name: str, flag: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[int, tuple[int, int]] | None:
        """How many fields of column `name` are flagged (plain ones by the survey, odd ones
        by `flag` on their values) and the (file, scan id) of the first; None if none."""
        stats = self.stats
        count = int(stats[f"{name}__n"].sum())
        firsts = stats.loc[stats[f"{name}__n"] > 0, ["_file", f"{name}__first"]]
        candidates = [(int(f), int(r)) for f, r in firsts.itertuples(index=False)]
        if name in self.odd:
            odd = self.odd[name]
            flagged = odd.judged.converts & flag(odd.judged.values)
            count += odd.count(flagged)
            hit = odd.first(flagged)
            if hit is not None:
                candidates.append(hit[:2])
        return (count, min(candidates)) if count else None

    def _raise_first(self, mask: Callable[[fields.TokenClasses], np.ndarray], error) -> None:
        """Raise `error(path, line, column, text)` for the first column (in file order) with
        a text that `mask(judged)` selects, at that text's first row."""
        for column in self.scan.columns:
            if column.name in self.odd:
                hit = self.odd[column.name].first(mask(self.odd[column.name].judged))
                if hit is not None:
                    file, scan_id, text = hit
                    line = self._line(file, scan_id)
                    raise error(self.scan.files[file], line, column, text)

    def _line(self, file: int, scan_id: int) -> int:
        header = 1 if self.scan.layout.header else 0
        return self.positions.row_in_file(file, scan_id) + 1 + header

    def _raise_malformed(self) -> None:
        """The readers' message for the first row that does not split into columns."""
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
        if scan.layout.header:
            assert scan.header_line is not None
            data = scan.header_line.rstrip(b"\r\n") + b"\n" + text + b"\n"
            names = None
        else:
            data, names = text + b"\n", list(fields.DELIMITED_RATING_NAMES)
        fields.check_structure(
            scan.files[row["_file"]], data, names=names, delimiter=scan.delimiter
        )
        # pyarrow splits the row after all (a quoting corner): its fields are judged as usual.


def _value_flags(low: float, high: float) -> dict[str, SparkColumn]:
    """Negative IDs and out-of-scale ratings among plain fields (as the pandas engine:
    float32 ratings against the bounds as float32)."""
    from pyspark.sql import functions as F

    flags = {name: ~F.col(f"{name}__odd") & (F.col(name) < 0) for name in ID_COLUMNS}
    rating = F.col("rating")
    outside = (rating < F.lit(low).cast("float")) | (rating > F.lit(high).cast("float"))
    flags["rating"] = ~F.col("rating__odd") & outside
    return flags


def _row_values(frame: DataFrame, file: int, scan_id: int) -> dict[str, Any]:
    from pyspark.sql import functions as F

    found = frame.filter((F.col("_file") == file) & (F.col("_row") == scan_id)).first()
    assert found is not None
    return found.asDict()
