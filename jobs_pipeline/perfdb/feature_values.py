"""Measured feature values: all-or-nothing bulk import and the per-step read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.catalog import (
    FEATURES,
    OBJECTS,
    ensure_named,
    sampling_period_seconds,
)
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import ImportFailed
from jobs_pipeline.perfdb.models import FeatureValueRow, table_of
from jobs_pipeline.perfdb.records import ImportSummary
from jobs_pipeline.perfdb.types import UTCDateTime

VALUES = table_of(FeatureValueRow)
CSV_COLUMNS = ("object", "feature", "timestamp", "value")
_MISSING_VALUE_TEXT = frozenset({"", "nan"})
LINE_INDEX = "line"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_feature_csv(source: str | Path | IO[str]) -> pd.DataFrame:
    """Reads and checks a feature CSV (columns object, feature, timestamp, value).

    Returns a frame with `object` and `feature` as strings, `timestamp` as UTC datetimes and
    `value` as float with NaN for "no data" (an empty cell or `NaN`), indexed by line number in
    the file (an index named "line", so that `import_frame` names lines). Raises `ImportFailed`
    naming the first bad line (line 1 is the header) or the missing columns.
    """
    try:
        # Blank lines are kept while reading so that positions stay line numbers.
        frame = pd.read_csv(
            source, dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=False
        )
    except FileNotFoundError:
        raise ImportFailed(f"no such file: {source}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ImportFailed(f"cannot read the CSV: {error}") from None
    except pd.errors.EmptyDataError:
        raise ImportFailed(
            "the CSV is empty: expected a header object,feature,timestamp,value"
        ) from None
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    missing = [column for column in CSV_COLUMNS if column not in frame.columns]
    if missing:
        raise ImportFailed(
            f"missing column(s) {', '.join(missing)}: expected {','.join(CSV_COLUMNS)}"
        )
    blank = (frame.iloc[:, 0] == "").to_numpy(copy=True)
    if blank.any():
        blank[blank] = (frame.loc[blank] == "").all(axis=1).to_numpy()
    line_numbers = (np.arange(len(frame)) + 2)[~blank]
    frame = frame.loc[~blank, list(CSV_COLUMNS)].reset_index(drop=True)

    # Names are stripped once per distinct name, not once per line; the parsers below accept
    # surrounding whitespace themselves.
    names = {column: _stripped(frame[column]) for column in ("object", "feature")}
    for column, stripped in names.items():
        _reject(stripped == "", line_numbers, frame[column], f"empty {column} name")

    text = frame["timestamp"]
    timestamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    _reject(timestamps.isna().to_numpy(), line_numbers, text, "bad timestamp")

    raw_values = frame["value"]
    values = pd.to_numeric(raw_values, errors="coerce").astype("float64").to_numpy()
    not_a_number = np.isnan(values)
    missing_value = np.zeros(len(values), dtype=bool)
    if not_a_number.any():
        missing_value[not_a_number] = (
            raw_values[not_a_number].str.strip().str.lower().isin(_MISSING_VALUE_TEXT).to_numpy()
        )
    _reject(
        (not_a_number & ~missing_value) | np.isinf(values), line_numbers, raw_values, "bad number"
    )

    return pd.DataFrame(
        {
            "object": names["object"],
            "feature": names["feature"],
            "timestamp": timestamps.dt.as_unit("us").array,
            "value": values,
        },
        index=pd.Index(line_numbers, name=LINE_INDEX),
    )


def _stripped(column: pd.Series) -> np.ndarray:
    codes, uniques = pd.factorize(column)
    return np.asarray([str(name).strip() for name in uniques], dtype=object)[codes]


def _reject(bad: np.ndarray, line_numbers: np.ndarray, shown: pd.Series, what: str) -> None:
    positions = np.flatnonzero(np.asarray(bad, dtype=bool))
    if positions.size:
        first = int(positions[0])
        more = f" (and {positions.size - 1} more lines)" if positions.size > 1 else ""
        text = str(shown.iloc[first]).strip()
        raise ImportFailed(f"line {line_numbers[first]}: {what} {text!r}{more}")


class FeatureValues:
    """Owns `feature_values`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def import_csv(
        self, source: str | Path | IO[str], *, sampling_period: timedelta | None = None
    ) -> ImportSummary:
        """`import_frame` of `parse_feature_csv`; errors name lines of the file."""
        return self.import_frame(parse_feature_csv(source), sampling_period=sampling_period)

    def import_frame(
        self, frame: pd.DataFrame, *, sampling_period: timedelta | None = None
    ) -> ImportSummary:
        """Upserts values (object, feature, timestamp, value) in one transaction: unknown
        objects and features are created, an existing (object, feature, timestamp) gets the
        new value, so importing the same rows again changes nothing. Naive timestamps are UTC,
        aware ones are converted to UTC; NaN is "no data".

        New features get `sampling_period` (default 10 minutes); with `sampling_period` given,
        a feature that exists with another period is refused. Rows with the same object,
        feature and timestamp but different values are refused (identical ones are stored
        once), and so are infinite values. A refusal (`ImportFailed`, naming the row, or the
        line of a frame from `parse_feature_csv`) writes nothing."""
        if frame.empty:
            return ImportSummary(rows=0)
        seconds = None if sampling_period is None else sampling_period_seconds(sampling_period)
        object_codes, object_names = _codes(frame["object"], "object name")
        feature_codes, feature_names = _codes(frame["feature"], "feature name")
        micros = _utc_microseconds(frame["timestamp"])
        values = frame["value"].to_numpy(dtype="float64", na_value=np.nan)
        infinite = np.flatnonzero(np.isinf(values))
        if infinite.size:
            position = int(infinite[0])
            raise ImportFailed(f"{_row_name(frame, position)}: bad number {values[position]}")
        with begin(self.engine) as connection:
            object_ids, new_objects = ensure_named(connection, OBJECTS, object_names)
            feature_ids, new_features = ensure_named(
                connection,
                FEATURES,
                feature_names,
                None if seconds is None else {"sampling_period_seconds": seconds},
            )
            if seconds is not None:
                _check_sampling_periods(connection, set(feature_names) - set(new_features), seconds)
            try:
                rows = _unique_rows_in_key_order(
                    _ids_of(object_names, object_ids)[object_codes],
                    _ids_of(feature_names, feature_ids)[feature_codes],
                    micros,
                    values,
                )
            except _ConflictingDuplicate as conflict:
                raise ImportFailed(_describe_conflict(frame, micros, values, conflict)) from None
            if connection.dialect.name == "postgresql":
                _copy_upsert_postgresql(connection, rows)
            else:
                _upsert_sqlite(connection, rows)
        return ImportSummary(
            rows=len(rows.micros), objects_created=new_objects, features_created=new_features
        )

    def read(self, object_id: int, feature_id: int, start: datetime, end: datetime) -> pd.Series:
        """The values of one object's feature with `start <= timestamp < end`, in time order,
        as a float Series (NaN = no data) on a UTC DatetimeIndex. One indexed query."""
        with begin(self.engine) as connection:
            return read_values(connection, object_id, feature_id, start, end)

    def objects_with_values(self, names: list[str]) -> list[str]:
        """Which of the named objects have any stored value (one indexed probe each)."""
        has_values = sa.exists().where(VALUES.c.object_id == OBJECTS.c.id)
        query = sa.select(OBJECTS.c.name).where(OBJECTS.c.name.in_(names), has_values)
        with begin(self.engine, write=False) as connection:
            return list(connection.scalars(query))

    def count(self) -> int:
        with begin(self.engine) as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(VALUES)).scalar_one()


# Timestamps leave the database as microseconds since the epoch, computed by the database
# itself, so a read builds no datetime (or string) object per row.
_READ_SQL = {
    "postgresql": (
        "SELECT (extract(epoch FROM timestamp) * 1000000)::float8, value FROM feature_values "
        "WHERE object_id = %s AND feature_id = %s AND timestamp >= %s AND timestamp < %s "
        "ORDER BY timestamp"
    ),
    "sqlite": (
        "SELECT CAST(strftime('%s', timestamp) AS INTEGER) * 1000000"
        " + CAST(substr(timestamp, 21, 6) AS INTEGER), value FROM feature_values "
        "WHERE object_id = ? AND feature_id = ? AND timestamp >= ? AND timestamp < ? "
        "ORDER BY timestamp"
    ),
}


def read_values(
    connection: Connection, object_id: int, feature_id: int, start: datetime, end: datetime
) -> pd.Series:
    dialect = connection.dialect.name
    bind = UTCDateTime().process_bind_param
    params = (object_id, feature_id, bind(start, connection.dialect), bind(end, connection.dialect))
    result = connection.exec_driver_sql(_READ_SQL[dialect], params)
    try:
        # Plain tuples from the driver's cursor: no Row object per sample.
        rows = result.cursor.fetchall()  # type: ignore[union-attr]
    finally:
        result.close()
    # float64 holds microsecond epochs exactly (< 2**53) and turns NULL values into NaN.
    table = np.array(rows, dtype="float64").reshape(-1, 2)
    index = pd.DatetimeIndex(table[:, 0].astype("int64").astype("datetime64[us]"), tz="UTC")
    return pd.Series(table[:, 1], index=index)


@dataclass(frozen=True)
class _Rows:
    """Rows to write, unique per key and sorted by (object_id, feature_id, timestamp)."""

    object_id: np.ndarray  # int64
    feature_id: np.ndarray  # int64
    micros: np.ndarray  # int64 microseconds since 1970-01-01 UTC
    value: np.ndarray  # float64, NaN = no data


def _codes(names: pd.Series, what: str) -> tuple[np.ndarray, list[str]]:
    codes, uniques = pd.factorize(names)
    if (codes < 0).any():
        raise ImportFailed(f"row {int(np.flatnonzero(codes < 0)[0])}: missing {what}")
    return codes, [str(name) for name in uniques]


def _ids_of(names: list[str], ids: dict[str, int]) -> np.ndarray:
    return np.array([ids[name] for name in names], dtype=np.int64)


def _utc_microseconds(timestamps: pd.Series) -> np.ndarray:
    index = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).as_unit("us")
    if index.hasnans:
        raise ImportFailed(f"row {int(np.flatnonzero(index.isna())[0])}: missing timestamp")
    return index.asi8


class _ConflictingDuplicate(Exception):
    """Two rows share a key but not a value: `row` and the `earlier` one (positions)."""

    def __init__(self, row: int, earlier: int) -> None:
        super().__init__(row, earlier)
        self.row = row
        self.earlier = earlier


def _unique_rows_in_key_order(
    object_id: np.ndarray, feature_id: np.ndarray, micros: np.ndarray, value: np.ndarray
) -> _Rows:
    """Sorts by key and keeps one of duplicate rows, which must agree (NaN agrees with NaN):
    otherwise `_ConflictingDuplicate` names the first row, in input order, whose value differs
    from an earlier row's. Writing in index order keeps the primary key's B-tree inserts local;
    input that is already sorted costs one pass."""
    after = (object_id[1:], feature_id[1:], micros[1:])
    before = (object_id[:-1], feature_id[:-1], micros[:-1])
    if not _strictly_increasing(after, before):
        order = np.lexsort((micros, feature_id, object_id))  # stable: equal keys keep order
        object_id, feature_id, micros = object_id[order], feature_id[order], micros[order]
        value = value[order]
        repeated = (
            (object_id[1:] == object_id[:-1])
            & (feature_id[1:] == feature_id[:-1])
            & (micros[1:] == micros[:-1])
        )
        # Within a key, rows keep their input order, so the first value that differs from its
        # predecessor is the first that differs from any earlier row of that key.
        later, earlier = value[1:], value[:-1]
        differs = repeated & (later != earlier) & ~(np.isnan(later) & np.isnan(earlier))
        if differs.any():
            rows = order[1:][differs]
            first = int(np.argmin(rows))
            raise _ConflictingDuplicate(int(rows[first]), int(order[:-1][differs][first]))
        kept = np.ones(len(order), dtype=bool)
        kept[:-1] = ~repeated
        object_id, feature_id, micros = object_id[kept], feature_id[kept], micros[kept]
        value = value[kept]
    return _Rows(object_id=object_id, feature_id=feature_id, micros=micros, value=value)


def _row_name(frame: pd.DataFrame, position: int) -> str:
    """How an error names a row: its line in the file for `parse_feature_csv`'s frames."""
    if frame.index.name == LINE_INDEX:
        return f"line {frame.index[position]}"
    return f"row {position}"


def _describe_conflict(
    frame: pd.DataFrame, micros: np.ndarray, values: np.ndarray, conflict: _ConflictingDuplicate
) -> str:
    row, earlier = conflict.row, conflict.earlier
    timestamp = (_EPOCH + timedelta(microseconds=int(micros[row]))).isoformat()
    key = f"{frame['object'].iloc[row]!r}, {frame['feature'].iloc[row]!r}, {timestamp}"
    return (
        f"{_row_name(frame, row)}: duplicate of {_row_name(frame, earlier)} ({key}) with "
        f"another value: {_shown(values[row])} instead of {_shown(values[earlier])}"
    )


def _shown(value: float) -> str:
    return "no value" if np.isnan(value) else f"{value:g}"


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


def _strictly_increasing(after: tuple[np.ndarray, ...], before: tuple[np.ndarray, ...]) -> bool:
    (o1, f1, t1), (o0, f0, t0) = after, before
    return bool(np.all((o1 > o0) | ((o1 == o0) & ((f1 > f0) | ((f1 == f0) & (t1 > t0))))))


# PostgreSQL's binary COPY format: a header, per row the field count and each field as its
# length plus big-endian bytes, then a trailer. Built with numpy, it costs no Python per row.
_PG_EPOCH_MICROS = 946_684_800_000_000  # 2000-01-01 UTC, the zero of a binary timestamptz
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension
_COPY_TRAILER = b"\xff\xff"
_COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("object_id_size", ">i4"),
        ("object_id", ">i4"),
        ("feature_id_size", ">i4"),
        ("feature_id", ">i4"),
        ("timestamp_size", ">i4"),
        ("timestamp", ">i8"),
        ("value_size", ">i4"),
        ("value", ">f8"),
    ]
)
_COPY_CHUNK_ROWS = 200_000


def _copy_records(rows: _Rows) -> np.ndarray:
    records = np.empty(len(rows.micros), dtype=_COPY_ROW)
    records["fields"] = 4
    records["object_id_size"] = 4
    records["object_id"] = rows.object_id
    records["feature_id_size"] = 4
    records["feature_id"] = rows.feature_id
    records["timestamp_size"] = 8
    records["timestamp"] = rows.micros - _PG_EPOCH_MICROS
    records["value_size"] = 8
    records["value"] = rows.value  # NaN here, NULL once inserted (see below)
    return records


def _copy_upsert_postgresql(connection: Connection, rows: _Rows) -> None:
    """Binary COPY into a temporary table, then one INSERT ... ON CONFLICT into the real one."""
    records = _copy_records(rows)
    driver_connection = connection.connection.driver_connection
    with driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(
            "CREATE TEMPORARY TABLE feature_values_import "
            "(object_id integer, feature_id integer, timestamp timestamptz, value float8) "
            "ON COMMIT DROP"
        )
        with cursor.copy("COPY feature_values_import FROM STDIN (FORMAT binary)") as copy:
            copy.write(_COPY_HEADER)
            for start in range(0, len(records), _COPY_CHUNK_ROWS):
                copy.write(records[start : start + _COPY_CHUNK_ROWS].tobytes())
            copy.write(_COPY_TRAILER)
        cursor.execute(
            "INSERT INTO feature_values (object_id, feature_id, timestamp, value) "
            "SELECT object_id, feature_id, timestamp, NULLIF(value, 'NaN'::float8) "
            "FROM feature_values_import "
            "ON CONFLICT (object_id, feature_id, timestamp) "
            "DO UPDATE SET value = EXCLUDED.value "
            "WHERE feature_values.value IS DISTINCT FROM EXCLUDED.value"
        )


def _upsert_sqlite(connection: Connection, rows: _Rows) -> None:
    text_times = np.datetime_as_string(rows.micros.astype("datetime64[us]"), unit="us")
    values = rows.value.astype(object)
    values[np.isnan(rows.value)] = None
    driver_connection = connection.connection.driver_connection
    driver_connection.executemany(  # type: ignore[union-attr]
        "INSERT INTO feature_values (object_id, feature_id, timestamp, value) "
        "VALUES (?, ?, replace(?, 'T', ' '), ?) "
        "ON CONFLICT (object_id, feature_id, timestamp) DO UPDATE SET value = excluded.value "
        "WHERE feature_values.value IS NOT excluded.value",
        zip(
            rows.object_id.tolist(),
            rows.feature_id.tolist(),
            text_times.tolist(),
            values.tolist(),
            strict=True,
        ),
    )
