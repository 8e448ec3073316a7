"""One import of feature values, all or nothing: new data copied straight in, anything that
meets stored or earlier rows staged and merged at the end, conflicting duplicates refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jobs_pipeline.perfdb.catalog import FEATURES, OBJECTS, ensure_named
from jobs_pipeline.perfdb.errors import ImportFailed
from jobs_pipeline.perfdb.feature_csv import LINE_INDEX
from jobs_pipeline.perfdb.feature_files import ROW_INDEX
from jobs_pipeline.perfdb.feature_import_sql import (
    DIFFERS,
    DROP_STAGING_SQL,
    FRESH_CONFLICT_SQL,
    INSERT_SQLITE,
    MERGE_POSTGRESQL,
    MERGE_SQLITE,
    NULL_ROW,
    PROBE_SQL,
    STAGE_SQLITE,
    STAGED_CONFLICT_SQL,
    STAGED_ROW,
    STAGING_INDEX_SQL,
    STAGING_SQL,
    VALUE_ROW,
    copy_in,
    copy_records,
    sqlite_time,
    sqlite_times,
    sqlite_values,
)
from jobs_pipeline.perfdb.feature_rows import (
    ConflictingDuplicate,
    Rows,
    describe_conflict,
    ids_of,
    name_codes,
    row_name,
    shown_value,
    unique_rows_in_key_order,
    utc_microseconds,
)
from jobs_pipeline.perfdb.records import ImportSummary
from jobs_pipeline.perfdb.types import UTCDateTime

# Rows handed to SQLite's executemany at a time.
SQLITE_BATCH_ROWS = 50_000


@dataclass
class _Pair:
    """What this import wrote or staged of one (object, feature): the span of its timestamps,
    whether later rows go to the staging table, and the span whose stored rows are all this
    import's own (written before the pair was first staged)."""

    lo: int
    hi: int
    staged: bool = False
    fresh: tuple[int, int] | None = None


class ImportWriter:
    """One import's writes, chunk by chunk, in the caller's transaction.

    A chunk whose (object, feature) spans hold no stored value and meet no earlier chunk's is
    copied straight into `feature_values` (the first import of new data: no merge, no upsert).
    Any other chunk goes to a staging table, checked and merged by `finish`: conflicting
    duplicates across chunks are refused there, unchanged values are left alone."""

    def __init__(self, connection: Connection, seconds: int | None) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.seconds = seconds
        self.pairs: dict[tuple[int, int], _Pair] = {}
        self.names: dict[str, dict[int, str]] = {"object": {}, "feature": {}}
        self.position_name = "row"
        self.staging = False
        self.overlap = False
        self.rows = self.new = self.changed = 0
        self.objects_created: list[str] = []
        self.features_created: list[str] = []

    def add(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        object_codes, object_names = name_codes(frame["object"], "object name")
        feature_codes, feature_names = name_codes(frame["feature"], "feature name")
        micros = utc_microseconds(frame["timestamp"])
        values = frame["value"].to_numpy(dtype="float64", na_value=np.nan)
        infinite = np.flatnonzero(np.isinf(values))
        if infinite.size:
            position = int(infinite[0])
            raise ImportFailed(f"{row_name(frame, position)}: bad number {values[position]}")
        object_ids = self._ensure(OBJECTS, "object", object_names, None)
        feature_ids = self._ensure(
            FEATURES,
            "feature",
            feature_names,
            None if self.seconds is None else {"sampling_period_seconds": self.seconds},
        )
        try:
            rows = unique_rows_in_key_order(
                object_ids[object_codes], feature_ids[feature_codes], micros, values
            )
        except ConflictingDuplicate as conflict:
            raise ImportFailed(describe_conflict(frame, micros, values, conflict)) from None
        if frame.index.name in (LINE_INDEX, ROW_INDEX):
            self.position_name = str(frame.index.name)
            lines = frame.index.to_numpy(dtype=np.int64)[rows.position]
        else:
            lines = rows.position + self.rows
        if self._claim(rows):
            self._write(rows)
            self.new += len(rows.micros)
        else:
            self._stage(rows, lines)
        self.rows += len(rows.micros)

    def _ensure(
        self, table: sa.Table, what: str, names: list[str], extra: dict[str, int] | None
    ) -> np.ndarray:
        ids, created = ensure_named(self.connection, table, names, extra)
        if what == "object":
            self.objects_created += created
        else:
            self.features_created += created
            if self.seconds is not None:
                _check_sampling_periods(
                    self.connection, set(names) - set(self.features_created), self.seconds
                )
        self.names[what].update((ids[name], name) for name in names)
        return ids_of(names, ids)

    def _claim(self, rows: Rows) -> bool:
        """Whether the chunk may be copied straight into `feature_values`; records its spans."""
        starts = np.flatnonzero(
            np.r_[True, (np.diff(rows.object_id) != 0) | (np.diff(rows.feature_id) != 0)]
        )
        ends = np.r_[starts[1:], len(rows.micros)] - 1
        keys = list(
            zip(rows.object_id[starts].tolist(), rows.feature_id[starts].tolist(), strict=True)
        )
        lows, highs = rows.micros[starts].tolist(), rows.micros[ends].tolist()
        probes: list[tuple[int, int, int, int]] = []
        direct = True
        for key, lo, hi in zip(keys, lows, highs, strict=True):
            pair = self.pairs.get(key)
            if pair is None:
                probes.append((*key, lo, hi))
            elif pair.staged or (lo <= pair.hi and hi >= pair.lo):
                direct = False
                self.overlap = self.overlap or (lo <= pair.hi and hi >= pair.lo)
            elif lo > pair.hi:  # the gap since the pair's last rows must be empty too
                probes.append((*key, pair.hi + 1, hi))
            else:
                probes.append((*key, lo, pair.lo - 1))
        direct = direct and not self._any_stored(probes)
        for key, lo, hi in zip(keys, lows, highs, strict=True):
            pair = self.pairs.get(key)
            if pair is None:
                self.pairs[key] = _Pair(lo=lo, hi=hi, staged=not direct)
                continue
            if not direct and not pair.staged:
                pair.staged, pair.fresh = True, (pair.lo, pair.hi)
            pair.lo, pair.hi = min(pair.lo, lo), max(pair.hi, hi)
        return direct

    def _any_stored(self, spans: list[tuple[int, int, int, int]]) -> bool:
        if not spans:
            return False
        sql = PROBE_SQL[self.dialect]
        if self.dialect == "postgresql":
            columns = [list(column) for column in zip(*spans, strict=True)]
            return bool(self.connection.exec_driver_sql(sql, tuple(columns)).scalar())
        return any(
            self.connection.exec_driver_sql(sql, (o, f, sqlite_time(lo), sqlite_time(hi))).scalar()
            for o, f, lo, hi in spans
        )

    def _write(self, rows: Rows) -> None:
        if self.dialect == "postgresql":
            missing = np.isnan(rows.value)
            copy_in(
                self.connection,
                "COPY feature_values (object_id, feature_id, timestamp, value) FROM STDIN"
                " (FORMAT binary)",
                (
                    copy_records(rows, VALUE_ROW, ~missing),
                    copy_records(rows, NULL_ROW, missing),
                ),
            )
            return
        self._insert_sqlite(INSERT_SQLITE, rows, None)

    def _stage(self, rows: Rows, lines: np.ndarray) -> None:
        if not self.staging:
            if self.dialect == "sqlite":  # a temporary table lives as long as the connection
                self.connection.exec_driver_sql(DROP_STAGING_SQL)
            self.connection.exec_driver_sql(STAGING_SQL[self.dialect])
            self.staging = True
        if self.dialect == "postgresql":
            records = copy_records(rows, STAGED_ROW, slice(None))
            records["line_size"] = 8
            records["line"] = lines
            copy_in(
                self.connection,
                "COPY feature_values_import FROM STDIN (FORMAT binary)",
                (records,),
            )
            return
        self._insert_sqlite(STAGE_SQLITE, rows, lines)

    def _insert_sqlite(self, statement: str, rows: Rows, lines: np.ndarray | None) -> None:
        """Rows (with their lines) as Python objects for SQLite, a slice at a time: a whole
        chunk of them took some 50 MB."""
        driver = self.connection.connection.driver_connection
        for start in range(0, len(rows.micros), SQLITE_BATCH_ROWS):
            part = slice(start, start + SQLITE_BATCH_ROWS)
            columns = [
                rows.object_id[part].tolist(),
                rows.feature_id[part].tolist(),
                sqlite_times(rows.micros[part]),
                sqlite_values(rows.value[part]),
            ]
            if lines is not None:
                columns.append(lines[part].tolist())
            driver.executemany(statement, zip(*columns, strict=True))  # type: ignore[union-attr]

    def finish(self) -> ImportSummary:
        if self.staging:
            self._refuse_staged_conflicts()
            if self.dialect == "postgresql":
                changed, new = self.connection.exec_driver_sql(MERGE_POSTGRESQL).one()
                self.changed, self.new = changed, self.new + new
            else:
                differing, update, insert, drop = MERGE_SQLITE
                self.connection.exec_driver_sql(differing)
                self.changed = self.connection.exec_driver_sql(update).rowcount
                self.new += self.connection.exec_driver_sql(insert).rowcount
                self.connection.exec_driver_sql(drop)
                self.connection.exec_driver_sql(DROP_STAGING_SQL)
        return ImportSummary(
            rows=self.rows,
            new_values=self.new,
            changed_values=self.changed,
            objects_created=self.objects_created,
            features_created=self.features_created,
        )

    def _refuse_staged_conflicts(self) -> None:
        if self.overlap:
            conflict = self.connection.exec_driver_sql(
                STAGED_CONFLICT_SQL.format(differs=DIFFERS[self.dialect])
            ).first()
            if conflict is not None:
                line, earlier, object_id, feature_id, timestamp, value, earlier_value = conflict
                raise ImportFailed(
                    f"{self.position_name} {line}: duplicate of {self.position_name} {earlier} "
                    f"({self._key(object_id, feature_id, timestamp)}) with another value: "
                    f"{shown_value(value)} instead of {shown_value(earlier_value)}"
                )
        fresh = [(key, pair.fresh) for key, pair in self.pairs.items() if pair.fresh]
        if not fresh:
            return
        self.connection.exec_driver_sql(STAGING_INDEX_SQL)
        sql = FRESH_CONFLICT_SQL[self.dialect]
        for (object_id, feature_id), (lo, hi) in fresh:
            span = (lo, hi) if self.dialect == "postgresql" else map(sqlite_time, (lo, hi))
            conflict = self.connection.exec_driver_sql(sql, (object_id, feature_id, *span)).first()
            if conflict is not None:
                line, timestamp, value, earlier_value = conflict
                raise ImportFailed(
                    f"{self.position_name} {line}: duplicate of an earlier "
                    f"{self.position_name} ({self._key(object_id, feature_id, timestamp)}) "
                    f"with another value: {shown_value(value)} "
                    f"instead of {shown_value(earlier_value)}"
                )

    def _key(self, object_id: int, feature_id: int, timestamp: datetime | str) -> str:
        stamp = UTCDateTime().process_result_value(timestamp, self.connection.dialect)
        shown = stamp.isoformat() if stamp is not None else str(timestamp)
        return (
            f"{self.names['object'][object_id]!r}, {self.names['feature'][feature_id]!r}, {shown}"
        )


def _check_sampling_periods(connection: Connection, names: set[str], seconds: int) -> None:
    """Refuses, naming the first by name, an existing feature whose period is not `seconds`."""
    if not names:
        return
    other = connection.execute(
        sa.select(FEATURES.c.name, FEATURES.c.sampling_period_seconds)
        .where(FEATURES.c.name.in_(sorted(names)))
        .where(FEATURES.c.sampling_period_seconds != seconds)
        .order_by(FEATURES.c.name)
        .limit(1)
    ).first()
    if other is not None:
        raise ImportFailed(
            f"feature {other.name!r} has a sampling period of {other.sampling_period_seconds} s, "
            f"not {seconds} s (change it with features set-period)"
        )
