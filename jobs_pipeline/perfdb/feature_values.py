"""Measured feature values: the all-or-nothing bulk import (the writer is `feature_import`) and
the per-step read."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.catalog import OBJECTS, sampling_period_seconds
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import ImportFailed
from jobs_pipeline.perfdb.feature_csv import exact_csv_chunks
from jobs_pipeline.perfdb.feature_files import (
    CHUNK_ROWS,
    CSV_BLOCK_BYTES,
    WatchedFile,
    fast_csv_chunks,
    is_parquet,
    parquet_chunks,
    read_ahead,
)
from jobs_pipeline.perfdb.feature_import import ImportWriter
from jobs_pipeline.perfdb.models import FeatureValueRow, table_of
from jobs_pipeline.perfdb.records import ImportSummary
from jobs_pipeline.perfdb.types import UTCDateTime

VALUES = table_of(FeatureValueRow)


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
                exact_csv_chunks(source, chunk_rows=chunk_rows),
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
            watched.chunks(exact_csv_chunks(path, chunk_rows=chunk_rows)),
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
            writer = ImportWriter(connection, seconds)
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
