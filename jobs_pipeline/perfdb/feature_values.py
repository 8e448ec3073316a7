"""Measured feature values: all-or-nothing bulk import and the per-step read."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
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
from jobs_pipeline.perfdb.feature_files import (
    CHUNK_ROWS,
    CSV_BLOCK_BYTES,
    CSV_COLUMNS,
    ROW_INDEX,
    SourceFailed,
    WatchedFile,
    check_columns,
    csv_read_problem,
    fast_csv_chunks,
    is_parquet,
    parquet_chunks,
    read_ahead,
)
from jobs_pipeline.perfdb.models import FeatureValueRow, table_of
from jobs_pipeline.perfdb.records import ImportSummary
from jobs_pipeline.perfdb.types import UTCDateTime

VALUES = table_of(FeatureValueRow)
_MISSING_VALUE_TEXT = frozenset({"", "nan"})
LINE_INDEX = "line"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Rows handed to SQLite's executemany at a time.
SQLITE_BATCH_ROWS = 50_000


def parse_feature_csv(source: str | Path | IO[str]) -> pd.DataFrame:
    """Reads and checks a whole feature CSV (columns object, feature, timestamp, value).

    Returns a frame with `object` and `feature` as strings, `timestamp` as UTC datetimes and
    `value` as float with NaN for "no data" (an empty cell or `NaN`), indexed by line number in
    the file (an index named "line", so that `import_frame` names lines). Raises `ImportFailed`
    naming the first bad line (line 1 is the header) or the missing columns.
    """
    return pd.concat(list(_exact_csv_chunks(source, chunk_rows=None)))


def _exact_csv_chunks(
    source: str | Path | IO[str], *, chunk_rows: int | None
) -> Iterator[pd.DataFrame]:
    """The CSV in checked chunks indexed by line: slower than `_fast_csv_chunks`, but it names
    the line of every problem (blank lines and all)."""
    try:
        # Blank lines are kept while reading so that positions stay line numbers.
        reader = pd.read_csv(
            source,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            skip_blank_lines=False,
            chunksize=chunk_rows,
        )
        if chunk_rows is None:
            yield _checked_csv_chunk(reader, 2)
            return
        first_line = 2
        with reader:
            for chunk in reader:
                yield _checked_csv_chunk(chunk, first_line)
                first_line += len(chunk)
    except FileNotFoundError:
        raise ImportFailed(f"no such file: {source}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ImportFailed(csv_read_problem(error, source)) from None
    except pd.errors.EmptyDataError:
        raise ImportFailed(
            "the CSV is empty: expected a header object,feature,timestamp,value"
        ) from None
    except OSError as error:
        raise SourceFailed(f"reading {source} failed: {error}; nothing was written") from None


def _checked_csv_chunk(frame: pd.DataFrame, first_line: int) -> pd.DataFrame:
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    check_columns(list(frame.columns))
    blank = (frame.iloc[:, 0] == "").to_numpy(copy=True)
    if blank.any():
        blank[blank] = (frame.loc[blank] == "").all(axis=1).to_numpy()
    line_numbers = (np.arange(len(frame)) + first_line)[~blank]
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
        self,
        source: str | Path | IO[str],
        *,
        sampling_period: timedelta | None = None,
        chunk_rows: int = CHUNK_ROWS,
        on_chunk: Callable[[int], object] | None = None,
    ) -> ImportSummary:
        """Imports a CSV or (by its suffix) Parquet file in chunks of about `chunk_rows`, in one
        transaction: memory stays bounded whatever the file's size, and a refusal anywhere
        (`ImportFailed` naming the line, or the row of a Parquet file) writes nothing. A
        well-formed CSV file is parsed by pyarrow; a refused one is read again by the exact
        parser, which names the line. `on_chunk(rows)` is told of each chunk written (to show
        progress)."""
        if not isinstance(source, str | Path):
            return self.import_chunks(
                _exact_csv_chunks(source, chunk_rows=chunk_rows),
                sampling_period=sampling_period,
                on_chunk=on_chunk,
            )
        path = Path(source)
        watched = WatchedFile(path)
        # Parsing ahead in a thread pays while psycopg waits for the server (GIL released); on
        # SQLite it slows the import, which takes and gives back the GIL for every row it writes.
        ahead = read_ahead if self.engine.dialect.name == "postgresql" else iter
        if is_parquet(path):
            return self.import_chunks(
                watched.chunks(ahead(parquet_chunks(path, batch_rows=chunk_rows))),
                sampling_period=sampling_period,
                on_chunk=on_chunk,
            )
        block_bytes = min(CSV_BLOCK_BYTES, max(chunk_rows * 40, 1024))
        try:
            return self.import_chunks(
                watched.chunks(
                    ahead(fast_csv_chunks(path, chunk_rows=chunk_rows, block_bytes=block_bytes))
                ),
                sampling_period=sampling_period,
                on_chunk=on_chunk,
            )
        except ImportFailed as fast_error:
            if "no such file" in str(fast_error) or "missing column" in str(fast_error):
                raise
        return self.import_chunks(
            watched.chunks(_exact_csv_chunks(path, chunk_rows=chunk_rows)),
            sampling_period=sampling_period,
            on_chunk=on_chunk,
        )

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
        return self.import_chunks([frame], sampling_period=sampling_period)

    def import_chunks(
        self,
        chunks: Iterable[pd.DataFrame],
        *,
        sampling_period: timedelta | None = None,
        on_chunk: Callable[[int], object] | None = None,
    ) -> ImportSummary:
        """`import_frame` of frames that together are one import, written as they come. A
        generator of chunks is closed when the import ends, however it ends (its file, and the
        thread of `read_ahead`, go with it)."""
        seconds = None if sampling_period is None else sampling_period_seconds(sampling_period)
        with begin(self.engine) as connection, _closing(chunks):
            writer = _ImportWriter(connection, seconds)
            for frame in chunks:
                writer.add(frame)
                if on_chunk is not None:
                    on_chunk(len(frame))
            return writer.finish()

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


@contextmanager
def _closing(chunks: Iterable[pd.DataFrame]) -> Iterator[None]:
    try:
        yield
    finally:
        if isinstance(chunks, Generator):
            chunks.close()


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
    position: np.ndarray  # int64 row positions in the frame


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
    position = np.arange(len(micros), dtype=np.int64)
    """Sorts by key and keeps one of duplicate rows, which must agree (NaN agrees with NaN):
    otherwise `_ConflictingDuplicate` names the first row, in input order, whose value differs
    from an earlier row's. Writing in index order keeps the primary key's B-tree inserts local;
    input that is already sorted costs one pass."""
    after = (object_id[1:], feature_id[1:], micros[1:])
    before = (object_id[:-1], feature_id[:-1], micros[:-1])
    if not _strictly_increasing(after, before):
        order = np.lexsort((micros, feature_id, object_id))  # stable: equal keys keep order
        object_id, feature_id, micros = object_id[order], feature_id[order], micros[order]
        value, position = value[order], position[order]
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
        value, position = value[kept], position[kept]
    return _Rows(
        object_id=object_id, feature_id=feature_id, micros=micros, value=value, position=position
    )


def _row_name(frame: pd.DataFrame, position: int) -> str:
    """How an error names a row: its line in the file for `parse_feature_csv`'s frames."""
    if frame.index.name in (LINE_INDEX, ROW_INDEX):
        return f"{frame.index.name} {frame.index[position]}"
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
_KEY_FIELDS = [
    ("object_id_size", ">i4"),
    ("object_id", ">i4"),
    ("feature_id_size", ">i4"),
    ("feature_id", ">i4"),
    ("timestamp_size", ">i4"),
    ("timestamp", ">i8"),
    ("value_size", ">i4"),
]
# A row of feature_values, and one whose value is NULL (size -1, no bytes).
_VALUE_ROW = np.dtype([("fields", ">i2"), *_KEY_FIELDS, ("value", ">f8")])
_NULL_ROW = np.dtype([("fields", ">i2"), *_KEY_FIELDS])
# A staged row: the value (NaN kept) and the row's line (or row) in the file.
_STAGED_ROW = np.dtype(
    [("fields", ">i2"), *_KEY_FIELDS, ("value", ">f8"), ("line_size", ">i4"), ("line", ">i8")]
)


def _copy_records(rows: _Rows, dtype: np.dtype, selected: np.ndarray | slice) -> np.ndarray:
    micros = rows.micros[selected]
    records = np.empty(len(micros), dtype=dtype)
    records["fields"] = len(dtype.names or ()) // 2
    records["object_id_size"] = 4
    records["object_id"] = rows.object_id[selected]
    records["feature_id_size"] = 4
    records["feature_id"] = rows.feature_id[selected]
    records["timestamp_size"] = 8
    records["timestamp"] = micros - _PG_EPOCH_MICROS
    if "value" in (dtype.names or ()):
        records["value_size"] = 8
        records["value"] = rows.value[selected]
    else:
        records["value_size"] = -1
    return records


def _copy_in(connection: Connection, statement: str, blocks: Iterable[np.ndarray]) -> None:
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(statement) as copy:
        copy.write(_COPY_HEADER)
        for records in blocks:
            copy.write(records.view(np.uint8).data)  # the records' bytes, not a copy
        copy.write(_COPY_TRAILER)


@dataclass
class _Pair:
    """What this import wrote or staged of one (object, feature): the span of its timestamps,
    whether later rows go to the staging table, and the span whose stored rows are all this
    import's own (written before the pair was first staged)."""

    lo: int
    hi: int
    staged: bool = False
    fresh: tuple[int, int] | None = None


_STAGING_SQL = {
    "postgresql": (
        "CREATE TEMPORARY TABLE feature_values_import (object_id integer, feature_id integer,"
        " timestamp timestamptz, value float8, line bigint) ON COMMIT DROP"
    ),
    "sqlite": (
        "CREATE TEMPORARY TABLE feature_values_import (object_id INTEGER, feature_id INTEGER,"
        " timestamp TEXT, value REAL, line INTEGER)"
    ),
}
_DROP_STAGING_SQL = "DROP TABLE IF EXISTS temp.feature_values_import"
# Whether any stored value lies in the given spans (one span per object and feature).
_PROBE_SQL = {
    "postgresql": (
        "SELECT EXISTS (SELECT 1 FROM unnest(%s::integer[], %s::integer[], %s::bigint[],"
        " %s::bigint[]) AS r(o, f, lo, hi) WHERE EXISTS (SELECT 1 FROM feature_values v"
        " WHERE v.object_id = r.o AND v.feature_id = r.f"
        " AND v.timestamp BETWEEN 'epoch'::timestamptz + r.lo * interval '1 microsecond'"
        " AND 'epoch'::timestamptz + r.hi * interval '1 microsecond'))"
    ),
    "sqlite": (
        "SELECT EXISTS (SELECT 1 FROM feature_values WHERE object_id = ? AND feature_id = ?"
        " AND timestamp BETWEEN ? AND ?)"
    ),
}
_INSERT_SQLITE = (
    "INSERT INTO feature_values (object_id, feature_id, timestamp, value) VALUES (?, ?, ?, ?)"
)
_STAGE_SQLITE = (
    "INSERT INTO feature_values_import (object_id, feature_id, timestamp, value, line)"
    " VALUES (?, ?, ?, ?, ?)"
)
# The first staged row, in file order, whose value differs from the staged row before it with
# the same key (so from every earlier one: NaN equals NaN on PostgreSQL, NULL is NULL on SQLite).
_STAGED_CONFLICT_SQL = (
    "SELECT line, earlier_line, object_id, feature_id, timestamp, value, earlier_value FROM ("
    "SELECT line, object_id, feature_id, timestamp, value,"
    " lag(line) OVER w AS earlier_line, lag(value) OVER w AS earlier_value"
    " FROM feature_values_import"
    " WINDOW w AS (PARTITION BY object_id, feature_id, timestamp ORDER BY line)) AS d"
    " WHERE earlier_line IS NOT NULL AND {differs} ORDER BY line LIMIT 1"
)
_DIFFERS = {
    "postgresql": "value IS DISTINCT FROM earlier_value",
    "sqlite": "value IS NOT earlier_value",
}
# A staged row that differs from a row this import wrote earlier in the span given.
_FRESH_CONFLICT_SQL = {
    "postgresql": (
        "SELECT s.line, s.timestamp, NULLIF(s.value, 'NaN'), v.value"
        " FROM feature_values_import s"
        " JOIN feature_values v USING (object_id, feature_id, timestamp)"
        " WHERE s.object_id = %s AND s.feature_id = %s"
        " AND s.timestamp BETWEEN 'epoch'::timestamptz + %s * interval '1 microsecond'"
        " AND 'epoch'::timestamptz + %s * interval '1 microsecond'"
        " AND v.value IS DISTINCT FROM NULLIF(s.value, 'NaN') ORDER BY s.line LIMIT 1"
    ),
    "sqlite": (
        "SELECT s.line, s.timestamp, s.value, v.value"
        " FROM feature_values_import s"
        " JOIN feature_values v USING (object_id, feature_id, timestamp)"
        " WHERE s.object_id = ? AND s.feature_id = ? AND s.timestamp BETWEEN ? AND ?"
        " AND v.value IS NOT s.value ORDER BY s.line LIMIT 1"
    ),
}
# The merge of the staging table on PostgreSQL: one join of the staged rows with the stored ones
# finds the values that changed and the ones that are new, then updates the first and inserts
# the second (two joins, one per statement, made re-imports three times slower). Returns the
# number of changed and of new values.
_MERGE_POSTGRESQL = (
    "WITH differing AS (SELECT s.object_id, s.feature_id, s.timestamp,"
    " NULLIF(s.value, 'NaN') AS value, v.object_id IS NULL AS new"
    " FROM feature_values_import s LEFT JOIN feature_values v ON v.object_id = s.object_id"
    " AND v.feature_id = s.feature_id AND v.timestamp = s.timestamp"
    " WHERE v.object_id IS NULL OR v.value IS DISTINCT FROM NULLIF(s.value, 'NaN')),"
    " changed AS (UPDATE feature_values v SET value = d.value FROM differing d"
    " WHERE NOT d.new AND v.object_id = d.object_id AND v.feature_id = d.feature_id"
    " AND v.timestamp = d.timestamp RETURNING 1),"
    " inserted AS (INSERT INTO feature_values (object_id, feature_id, timestamp, value)"
    " SELECT object_id, feature_id, timestamp, value FROM differing WHERE new"
    " ON CONFLICT DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM inserted)"
)
# On SQLite (no data-modifying CTEs) the one join keeps the differing rows in a second temporary
# table, from which the changed values are updated and the new ones inserted.
_MERGE_SQLITE = (
    "CREATE TEMPORARY TABLE feature_values_differing AS SELECT s.object_id, s.feature_id,"
    " s.timestamp, s.value, v.object_id IS NULL AS new FROM feature_values_import s"
    " LEFT JOIN feature_values v ON v.object_id = s.object_id AND v.feature_id = s.feature_id"
    " AND v.timestamp = s.timestamp WHERE v.object_id IS NULL OR v.value IS NOT s.value",
    "UPDATE feature_values SET value = d.value FROM feature_values_differing d"
    " WHERE NOT d.new AND feature_values.object_id = d.object_id"
    " AND feature_values.feature_id = d.feature_id AND feature_values.timestamp = d.timestamp",
    "INSERT INTO feature_values (object_id, feature_id, timestamp, value)"
    " SELECT object_id, feature_id, timestamp, value FROM feature_values_differing WHERE new"
    " ON CONFLICT DO NOTHING",
    "DROP TABLE temp.feature_values_differing",
)
_STAGING_INDEX_SQL = (
    "CREATE INDEX feature_values_import_key ON feature_values_import"
    " (object_id, feature_id, timestamp)"
)


def _sqlite_times(micros: np.ndarray) -> list[str]:
    """Microseconds since the epoch as SQLite's timestamp text ('2024-01-01 00:10:00.000000').
    A fleet's series share their timestamps: each distinct one is formatted once."""
    codes, distinct = pd.factorize(micros)
    text = np.datetime_as_string(distinct.astype("datetime64[us]"), unit="us")
    characters = text.view(np.uint32).reshape(-1, text.dtype.itemsize // 4)
    characters[:, 10] = ord(" ")  # the ISO 'T' between date and time (years have 4 digits)
    return text.astype(object)[codes].tolist()


def _sqlite_time(micros: int) -> str:
    return _sqlite_times(np.array([micros], dtype=np.int64))[0]


def _sqlite_values(values: np.ndarray) -> list[float | None]:
    shown = values.astype(object)
    shown[np.isnan(values)] = None
    return shown.tolist()


class _ImportWriter:
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
        object_codes, object_names = _codes(frame["object"], "object name")
        feature_codes, feature_names = _codes(frame["feature"], "feature name")
        micros = _utc_microseconds(frame["timestamp"])
        values = frame["value"].to_numpy(dtype="float64", na_value=np.nan)
        infinite = np.flatnonzero(np.isinf(values))
        if infinite.size:
            position = int(infinite[0])
            raise ImportFailed(f"{_row_name(frame, position)}: bad number {values[position]}")
        object_ids = self._ensure(OBJECTS, "object", object_names, None)
        feature_ids = self._ensure(
            FEATURES,
            "feature",
            feature_names,
            None if self.seconds is None else {"sampling_period_seconds": self.seconds},
        )
        try:
            rows = _unique_rows_in_key_order(
                object_ids[object_codes], feature_ids[feature_codes], micros, values
            )
        except _ConflictingDuplicate as conflict:
            raise ImportFailed(_describe_conflict(frame, micros, values, conflict)) from None
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
        return _ids_of(names, ids)

    def _claim(self, rows: _Rows) -> bool:
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
        sql = _PROBE_SQL[self.dialect]
        if self.dialect == "postgresql":
            columns = [list(column) for column in zip(*spans, strict=True)]
            return bool(self.connection.exec_driver_sql(sql, tuple(columns)).scalar())
        return any(
            self.connection.exec_driver_sql(
                sql, (o, f, _sqlite_time(lo), _sqlite_time(hi))
            ).scalar()
            for o, f, lo, hi in spans
        )

    def _write(self, rows: _Rows) -> None:
        if self.dialect == "postgresql":
            missing = np.isnan(rows.value)
            _copy_in(
                self.connection,
                "COPY feature_values (object_id, feature_id, timestamp, value) FROM STDIN"
                " (FORMAT binary)",
                (
                    _copy_records(rows, _VALUE_ROW, ~missing),
                    _copy_records(rows, _NULL_ROW, missing),
                ),
            )
            return
        self._insert_sqlite(_INSERT_SQLITE, rows, None)

    def _stage(self, rows: _Rows, lines: np.ndarray) -> None:
        if not self.staging:
            if self.dialect == "sqlite":  # a temporary table lives as long as the connection
                self.connection.exec_driver_sql(_DROP_STAGING_SQL)
            self.connection.exec_driver_sql(_STAGING_SQL[self.dialect])
            self.staging = True
        if self.dialect == "postgresql":
            records = _copy_records(rows, _STAGED_ROW, slice(None))
            records["line_size"] = 8
            records["line"] = lines
            _copy_in(
                self.connection,
                "COPY feature_values_import FROM STDIN (FORMAT binary)",
                (records,),
            )
            return
        self._insert_sqlite(_STAGE_SQLITE, rows, lines)

    def _insert_sqlite(self, statement: str, rows: _Rows, lines: np.ndarray | None) -> None:
        """Rows (with their lines) as Python objects for SQLite, a slice at a time: a whole
        chunk of them took some 50 MB."""
        driver = self.connection.connection.driver_connection
        for start in range(0, len(rows.micros), SQLITE_BATCH_ROWS):
            part = slice(start, start + SQLITE_BATCH_ROWS)
            columns = [
                rows.object_id[part].tolist(),
                rows.feature_id[part].tolist(),
                _sqlite_times(rows.micros[part]),
                _sqlite_values(rows.value[part]),
            ]
            if lines is not None:
                columns.append(lines[part].tolist())
            driver.executemany(statement, zip(*columns, strict=True))  # type: ignore[union-attr]

    def finish(self) -> ImportSummary:
        if self.staging:
            self._refuse_staged_conflicts()
            if self.dialect == "postgresql":
                changed, new = self.connection.exec_driver_sql(_MERGE_POSTGRESQL).one()
                self.changed, self.new = changed, self.new + new
            else:
                differing, update, insert, drop = _MERGE_SQLITE
                self.connection.exec_driver_sql(differing)
                self.changed = self.connection.exec_driver_sql(update).rowcount
                self.new += self.connection.exec_driver_sql(insert).rowcount
                self.connection.exec_driver_sql(drop)
                self.connection.exec_driver_sql(_DROP_STAGING_SQL)
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
                _STAGED_CONFLICT_SQL.format(differs=_DIFFERS[self.dialect])
            ).first()
            if conflict is not None:
                line, earlier, object_id, feature_id, timestamp, value, earlier_value = conflict
                raise ImportFailed(
                    f"{self.position_name} {line}: duplicate of {self.position_name} {earlier} "
                    f"({self._key(object_id, feature_id, timestamp)}) with another value: "
                    f"{_shown(value)} instead of {_shown(earlier_value)}"
                )
        fresh = [(key, pair.fresh) for key, pair in self.pairs.items() if pair.fresh]
        if not fresh:
            return
        self.connection.exec_driver_sql(_STAGING_INDEX_SQL)
        sql = _FRESH_CONFLICT_SQL[self.dialect]
        for (object_id, feature_id), (lo, hi) in fresh:
            span = (lo, hi) if self.dialect == "postgresql" else map(_sqlite_time, (lo, hi))
            conflict = self.connection.exec_driver_sql(sql, (object_id, feature_id, *span)).first()
            if conflict is not None:
                line, timestamp, value, earlier_value = conflict
                raise ImportFailed(
                    f"{self.position_name} {line}: duplicate of an earlier "
                    f"{self.position_name} ({self._key(object_id, feature_id, timestamp)}) "
                    f"with another value: {_shown(value)} instead of {_shown(earlier_value)}"
                )

    def _key(self, object_id: int, feature_id: int, timestamp: datetime | str) -> str:
        stamp = UTCDateTime().process_result_value(timestamp, self.connection.dialect)
        shown = stamp.isoformat() if stamp is not None else str(timestamp)
        return (
            f"{self.names['object'][object_id]!r}, {self.names['feature'][feature_id]!r}, {shown}"
        )


def _shown(value: float | None) -> str:
    return "no value" if value is None or np.isnan(value) else f"{value:g}"
