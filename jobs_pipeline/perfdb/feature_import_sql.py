"""How an import's rows reach the database: PostgreSQL's binary COPY built with numpy, SQLite's
timestamp text, and the statements of the staging table that merges a re-import."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from jobs_pipeline.perfdb.feature_rows import Rows

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
VALUE_ROW = np.dtype([("fields", ">i2"), *_KEY_FIELDS, ("value", ">f8")])
NULL_ROW = np.dtype([("fields", ">i2"), *_KEY_FIELDS])
# A staged row: the value (NaN kept) and the row's line (or row) in the file.
STAGED_ROW = np.dtype(
    [("fields", ">i2"), *_KEY_FIELDS, ("value", ">f8"), ("line_size", ">i4"), ("line", ">i8")]
)


def copy_records(rows: Rows, dtype: np.dtype, selected: np.ndarray | slice) -> np.ndarray:
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


def copy_in(connection: Connection, statement: str, blocks: Iterable[np.ndarray]) -> None:
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(statement) as copy:
        copy.write(_COPY_HEADER)
        for records in blocks:
            copy.write(records.view(np.uint8).data)  # the records' bytes, not a copy
        copy.write(_COPY_TRAILER)


STAGING_SQL = {
    "postgresql": (
        "CREATE TEMPORARY TABLE feature_values_import (object_id integer, feature_id integer,"
        " timestamp timestamptz, value float8, line bigint) ON COMMIT DROP"
    ),
    "sqlite": (
        "CREATE TEMPORARY TABLE feature_values_import (object_id INTEGER, feature_id INTEGER,"
        " timestamp TEXT, value REAL, line INTEGER)"
    ),
}
DROP_STAGING_SQL = "DROP TABLE IF EXISTS temp.feature_values_import"
# Whether any stored value lies in the given spans (one span per object and feature).
PROBE_SQL = {
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
INSERT_SQLITE = (
    "INSERT INTO feature_values (object_id, feature_id, timestamp, value) VALUES (?, ?, ?, ?)"
)
STAGE_SQLITE = (
    "INSERT INTO feature_values_import (object_id, feature_id, timestamp, value, line)"
    " VALUES (?, ?, ?, ?, ?)"
)
# The first staged row, in file order, whose value differs from the staged row before it with
# the same key (so from every earlier one: NaN equals NaN on PostgreSQL, NULL is NULL on SQLite).
STAGED_CONFLICT_SQL = (
    "SELECT line, earlier_line, object_id, feature_id, timestamp, value, earlier_value FROM ("
    "SELECT line, object_id, feature_id, timestamp, value,"
    " lag(line) OVER w AS earlier_line, lag(value) OVER w AS earlier_value"
    " FROM feature_values_import"
    " WINDOW w AS (PARTITION BY object_id, feature_id, timestamp ORDER BY line)) AS d"
    " WHERE earlier_line IS NOT NULL AND {differs} ORDER BY line LIMIT 1"
)
DIFFERS = {
    "postgresql": "value IS DISTINCT FROM earlier_value",
    "sqlite": "value IS NOT earlier_value",
}
# A staged row that differs from a row this import wrote earlier in the span given.
FRESH_CONFLICT_SQL = {
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
MERGE_POSTGRESQL = (
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
MERGE_SQLITE = (
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
STAGING_INDEX_SQL = (
    "CREATE INDEX feature_values_import_key ON feature_values_import"
    " (object_id, feature_id, timestamp)"
)


def sqlite_times(micros: np.ndarray) -> list[str]:
    """Microseconds since the epoch as SQLite's timestamp text ('2024-01-01 00:10:00.000000').
    A fleet's series share their timestamps: each distinct one is formatted once."""
    codes, distinct = pd.factorize(micros)
    text = np.datetime_as_string(distinct.astype("datetime64[us]"), unit="us")
    characters = text.view(np.uint32).reshape(-1, text.dtype.itemsize // 4)
    characters[:, 10] = ord(" ")  # the ISO 'T' between date and time (years have 4 digits)
    return text.astype(object)[codes].tolist()


def sqlite_time(micros: int) -> str:
    return sqlite_times(np.array([micros], dtype=np.int64))[0]


def sqlite_values(values: np.ndarray) -> list[float | None]:
    shown = values.astype(object)
    shown[np.isnan(values)] = None
    return shown.tolist()
