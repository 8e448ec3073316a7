"""Measured feature values: all-or-nothing bulk import and the per-step read."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.catalog import FEATURES, OBJECTS, ensure_named
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import ImportFailed
from jobs_pipeline.perfdb.models import FeatureValueRow
from jobs_pipeline.perfdb.records import ImportSummary
from jobs_pipeline.perfdb.types import to_utc

VALUES = FeatureValueRow.__table__
CSV_COLUMNS = ("object", "feature", "timestamp", "value")
_MISSING_VALUE_TEXT = frozenset({"", "nan"})


def parse_feature_csv(source: str | Path | IO[str]) -> pd.DataFrame:
    """Reads and checks a feature CSV (columns object, feature, timestamp, value).

    Returns a frame with `object` and `feature` as strings, `timestamp` as UTC datetimes and
    `value` as float with NaN for "no data" (an empty cell or `NaN`). Raises `ImportFailed`
    naming the first bad line (line 1 is the header) or the missing columns.
    """
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
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
    frame = frame.loc[:, list(CSV_COLUMNS)]
    line_numbers = np.arange(len(frame)) + 2

    for column in ("object", "feature"):
        frame[column] = frame[column].str.strip()
        _reject(frame[column] == "", line_numbers, frame[column], f"empty {column} name")

    text = frame["timestamp"].str.strip()
    timestamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    _reject(timestamps.isna().to_numpy(), line_numbers, text, "bad timestamp")

    raw_values = frame["value"].str.strip()
    missing_value = raw_values.str.lower().isin(_MISSING_VALUE_TEXT)
    values = pd.to_numeric(raw_values.where(~missing_value), errors="coerce")
    bad_value = (values.isna() & ~missing_value) | np.isinf(values.fillna(0.0))
    _reject(bad_value.to_numpy(), line_numbers, raw_values, "bad number")

    return pd.DataFrame(
        {
            "object": frame["object"].astype(object),
            "feature": frame["feature"].astype(object),
            "timestamp": timestamps.dt.as_unit("us"),
            "value": values.astype("float64"),
        }
    )


def _reject(bad: np.ndarray, line_numbers: np.ndarray, shown: pd.Series, what: str) -> None:
    positions = np.flatnonzero(np.asarray(bad, dtype=bool))
    if positions.size:
        first = int(positions[0])
        more = f" (and {positions.size - 1} more lines)" if positions.size > 1 else ""
        raise ImportFailed(f"line {line_numbers[first]}: {what} {shown.iloc[first]!r}{more}")


class FeatureValues:
    """Owns `feature_values`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def import_csv(self, source: str | Path | IO[str]) -> ImportSummary:
        return self.import_frame(parse_feature_csv(source))

    def import_frame(self, frame: pd.DataFrame) -> ImportSummary:
        """Upserts values (object, feature, timestamp, value) in one transaction: unknown
        objects and features are created, an existing (object, feature, timestamp) gets the
        new value, so importing the same rows again changes nothing."""
        if frame.empty:
            return ImportSummary(rows=0)
        # The last of duplicate rows wins, as a later line of a file would.
        frame = frame.drop_duplicates(["object", "feature", "timestamp"], keep="last")
        with begin(self.engine) as connection:
            object_ids, new_objects = ensure_named(connection, OBJECTS, frame["object"].unique())
            feature_ids, new_features = ensure_named(
                connection, FEATURES, frame["feature"].unique()
            )
            rows = pd.DataFrame(
                {
                    "object_id": frame["object"].map(object_ids).astype("int64"),
                    "feature_id": frame["feature"].map(feature_ids).astype("int64"),
                    "timestamp": frame["timestamp"],
                    "value": frame["value"],
                }
            )
            if connection.dialect.name == "postgresql":
                _copy_upsert_postgresql(connection, rows)
            else:
                _upsert_sqlite(connection, rows)
        return ImportSummary(
            rows=len(frame), objects_created=new_objects, features_created=new_features
        )

    def read(self, object_id: int, feature_id: int, start: datetime, end: datetime) -> pd.Series:
        """The values of one object's feature with `start <= timestamp < end`, in time order,
        as a float Series (NaN = no data) on a UTC DatetimeIndex. One indexed query."""
        with begin(self.engine) as connection:
            return read_values(connection, object_id, feature_id, start, end)

    def count(self) -> int:
        with begin(self.engine) as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(VALUES)).scalar_one()


def read_values(
    connection: Connection, object_id: int, feature_id: int, start: datetime, end: datetime
) -> pd.Series:
    column = VALUES.c.timestamp
    if connection.dialect.name == "postgresql":
        # Microseconds since the epoch: no datetime object per row on the way out.
        raw_time = sa.cast(sa.func.extract("epoch", column) * 1_000_000, sa.BigInteger)
    else:
        raw_time = sa.type_coerce(column, sa.String)
    query = (
        sa.select(raw_time, VALUES.c.value)
        .where(
            VALUES.c.object_id == object_id,
            VALUES.c.feature_id == feature_id,
            column >= to_utc(start),
            column < to_utc(end),
        )
        .order_by(column)
    )
    rows = connection.execute(query).all()
    if not rows:
        return pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype="float64")
    times, values = zip(*rows, strict=True)
    if connection.dialect.name == "postgresql":
        index = pd.DatetimeIndex(np.asarray(times, dtype="datetime64[us]"), tz="UTC")
    else:
        index = pd.DatetimeIndex(pd.to_datetime(list(times), format="%Y-%m-%d %H:%M:%S.%f"))
        index = index.tz_localize("UTC")
    return pd.Series(np.asarray(values, dtype="float64"), index=index)


def _copy_upsert_postgresql(connection: Connection, rows: pd.DataFrame) -> None:
    """COPY into a temporary table, then one INSERT ... ON CONFLICT into the real one."""
    buffer = io.StringIO()
    rows.to_csv(buffer, index=False, header=False, na_rep="", date_format="%Y-%m-%d %H:%M:%S.%f+00")
    driver_connection = connection.connection.driver_connection
    with driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(
            "CREATE TEMPORARY TABLE feature_values_import "
            "(object_id integer, feature_id integer, timestamp timestamptz, value float8) "
            "ON COMMIT DROP"
        )
        with cursor.copy("COPY feature_values_import FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getvalue())
        cursor.execute(
            "INSERT INTO feature_values (object_id, feature_id, timestamp, value) "
            "SELECT object_id, feature_id, timestamp, value FROM feature_values_import "
            "ON CONFLICT (object_id, feature_id, timestamp) "
            "DO UPDATE SET value = EXCLUDED.value "
            "WHERE feature_values.value IS DISTINCT FROM EXCLUDED.value"
        )


def _upsert_sqlite(connection: Connection, rows: pd.DataFrame) -> None:
    timestamps = np.datetime_as_string(
        rows["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]"),
        unit="us",
    )
    text_times = pd.Series(timestamps).str.replace("T", " ", regex=False)
    values = rows["value"].astype(object).where(rows["value"].notna(), None)
    driver_connection = connection.connection.driver_connection
    driver_connection.executemany(  # type: ignore[union-attr]
        "INSERT INTO feature_values (object_id, feature_id, timestamp, value) "
        "VALUES (?, ?, ?, ?) "
        "ON CONFLICT (object_id, feature_id, timestamp) DO UPDATE SET value = excluded.value",
        zip(
            rows["object_id"].tolist(),
            rows["feature_id"].tolist(),
            text_times.tolist(),
            values.tolist(),
            strict=True,
        ),
    )
