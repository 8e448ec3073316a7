"""Feature files read in bounded chunks: CSV (fast with pyarrow, exact with pandas) and Parquet.

Each chunk is a frame of object, feature, timestamp (UTC) and value (NaN = no data) that
`FeatureValues` imports; its index names positions in the file for error messages.
"""

from __future__ import annotations

import csv
import os
import queue
import re
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from jobs_pipeline.perfdb.errors import ImportFailed, PerfDBError

CSV_COLUMNS = ("object", "feature", "timestamp", "value")
ROW_INDEX = "row"
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
# Values per chunk that `fast_csv_chunks` and `parquet_chunks` yield.
CHUNK_ROWS = 400_000
# pyarrow parses a CSV in blocks of this size and keeps some ten times that in buffers (and, with
# 16 MB blocks, more the longer the file: 670 MB after 15 million lines); 1 MB blocks cost
# about 60 MB whatever the file and parse as fast. Chunks gather blocks up to `CHUNK_ROWS`.
CSV_BLOCK_BYTES = 1 << 20
PARQUET_BUFFER_BYTES = 1 << 20
_NAME_TYPE = pa.dictionary(pa.int32(), pa.string())


class SourceFailed(PerfDBError):
    """The file could not be read to the end; nothing was written."""


@dataclass(frozen=True)
class _FileState:
    device: int
    inode: int
    size: int
    modified_ns: int


class WatchedFile:
    """A file that must stay as it was while an import reads it, chunk after chunk.

    A file deleted, replaced, truncated or written to in the middle of an import may have been
    read in part, or in parts of two versions: `chunks` then raises `SourceFailed`, which says
    what happened, instead of finishing the import (or of refusing a line that a cut made)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.before = self._state()

    def _state(self) -> _FileState | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return _FileState(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def check(self) -> None:
        """Raises `SourceFailed` if the file is no longer what it was when watching began."""
        before, now = self.before, self._state()
        if before is None or now == before:
            return  # a file missing from the start is the readers' to refuse
        if now is None:
            happened = "was deleted"
        elif (now.device, now.inode) != (before.device, before.inode):
            happened = "was replaced by another file"
        elif now.size < before.size:
            happened = f"was truncated from {before.size:,} to {now.size:,} bytes"
        elif now.size > before.size:
            happened = f"grew from {before.size:,} to {now.size:,} bytes"
        else:
            happened = "was modified"
        raise SourceFailed(f"{self.path} {happened} while it was imported; nothing was written")

    def chunks(self, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """`chunks`, then a check that the file did not change while they were read; a refusal
        of its contents is checked too, since a cut file can look like a bad line."""
        try:
            yield from chunks
        except PerfDBError:
            self.check()
            raise
        self.check()


def read_ahead(chunks: Generator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """`chunks`, made by a thread of its own one chunk ahead of the caller: reading and parsing
    the next chunk (pyarrow's C++, which releases the GIL) overlaps with writing this one.

    The caller sees the chunks and the errors of `chunks` as if it iterated them itself;
    stopping early (closing the iterator, an error while writing) stops the thread and closes
    `chunks`."""
    handoff: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
    stopped = threading.Event()

    def offer(item: tuple[str, object]) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not offer(("chunk", chunk)):
                    return
            offer(("end", None))
        except BaseException as error:  # handed to the caller, who raises it
            offer(("error", error))
        finally:
            chunks.close()

    thread = threading.Thread(target=produce, name="feature-file-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        stopped.set()
        thread.join()


def is_parquet(source: str | Path | IO[str]) -> bool:
    return isinstance(source, str | Path) and Path(source).suffix.lower() in PARQUET_SUFFIXES


def csv_header(path: Path) -> list[str]:
    """The CSV's column names, stripped and lower-cased; `ImportFailed` without any."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            header = next(csv.reader(file), None)
    except FileNotFoundError:
        raise ImportFailed(f"no such file: {path}") from None
    except UnicodeDecodeError as error:
        raise ImportFailed(f"cannot read the CSV: {error}") from None
    if not header:
        raise ImportFailed("the CSV is empty: expected a header object,feature,timestamp,value")
    return [name.strip().lower() for name in header]


# The two problems pandas' CSV parser finds itself, as it words them.
_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def csv_read_problem(error: Exception, source: str | Path | IO[str]) -> str:
    """One line that names the line of a CSV that pandas could not parse or decode."""
    if isinstance(error, UnicodeDecodeError):
        found = _first_undecodable_line(source)
        if found is not None:
            line, column, byte = found
            problem = f"line {line}: not UTF-8 text (byte 0x{byte:02x} at column {column})"
            return f"{problem}: not a CSV file" if line == 1 else problem
    text = " ".join(str(error).split())
    if match := _FIELD_COUNT.search(text):
        expected, number, seen = match.groups()
        return f"line {number}: {seen} fields, expected {expected}"
    if match := _OPEN_QUOTE.search(text):
        return f"line {int(match.group(1)) + 1}: a quoted field that never ends"
    return f"cannot read the CSV: {text}"


def _first_undecodable_line(source: str | Path | IO[str]) -> tuple[int, int, int] | None:
    """(line, column, byte) of the first byte of a file that is not UTF-8 text."""
    if not isinstance(source, str | Path):
        return None
    with Path(source).open("rb") as file:
        for line, raw in enumerate(file, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                return line, error.start + 1, raw[error.start]
    return None


def check_columns(columns: list[str]) -> None:
    missing = [column for column in CSV_COLUMNS if column not in columns]
    if missing:
        raise ImportFailed(
            f"missing column(s) {', '.join(missing)}: expected {','.join(CSV_COLUMNS)}"
        )


def fast_csv_chunks(
    path: Path, chunk_rows: int = CHUNK_ROWS, block_bytes: int = CSV_BLOCK_BYTES
) -> Generator[pd.DataFrame]:
    """The CSV in chunks of at least `chunk_rows` lines (but the last), parsed by pyarrow
    (multi-threaded C++) in blocks of `block_bytes`, for well-formed files whose timestamps all
    carry a zone or all carry none. Any problem raises `ImportFailed` without a line number: the
    caller then reads the file again with the exact reader, which names it."""
    names = csv_header(path)
    check_columns(names)
    timestamp_type = pa.timestamp("us", tz="UTC" if _first_stamp_has_zone(path, names) else None)
    options = pa_csv.ConvertOptions(
        column_types={
            "object": _NAME_TYPE,
            "feature": _NAME_TYPE,
            "timestamp": timestamp_type,
            "value": pa.float64(),
        },
        null_values=["", "NaN", "nan"],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        include_columns=list(CSV_COLUMNS),
    )
    read = pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=block_bytes)
    first_row = 1
    try:
        with path.open("rb") as file:
            reader = pa_csv.open_csv(file, read_options=read, convert_options=options)
            for batch in _gathered(reader, chunk_rows):
                frame = _batch_frame(batch, first_row)
                first_row += batch.num_rows
                yield frame
    except FileNotFoundError:
        raise ImportFailed(f"no such file: {path}") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as error:
        raise ImportFailed(f"cannot read the CSV: {error}") from None
    except OSError as error:
        raise SourceFailed(f"reading {path} failed: {error}; nothing was written") from None


def _gathered(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Consecutive batches joined into batches of at least `rows` rows (but the last)."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= rows:
            yield _joined(pending)
            pending, pending_rows = [], 0
    if pending:
        yield _joined(pending)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    # Each block has its own dictionary of names: joining them unifies the dictionaries.
    table = pa.Table.from_batches(batches).combine_chunks()
    return table.to_batches()[0]


def _first_stamp_has_zone(path: Path, names: list[str]) -> bool:
    with path.open(newline="", encoding="utf-8") as file:
        rows = csv.reader(file)
        next(rows, None)
        first = next((row for row in rows if row), None)
    if first is None or len(first) != len(names):
        return True
    stamp = first[names.index("timestamp")].strip()
    return stamp.endswith(("Z", "z")) or (len(stamp) > 19 and stamp[-6] in "+-")


def _batch_frame(batch: pa.RecordBatch, first_row: int) -> pd.DataFrame:
    names = {column: _stripped_names(batch.column(column)) for column in ("object", "feature")}
    timestamps = batch.column("timestamp")
    if timestamps.type.tz is None:
        timestamps = timestamps.cast(pa.timestamp("us", tz="UTC"))
    if timestamps.null_count:
        raise ImportFailed("bad timestamp")
    values = batch.column("value").to_numpy(zero_copy_only=False)
    if np.isinf(values).any():
        raise ImportFailed("bad number")
    return pd.DataFrame(
        {
            **names,
            "timestamp": timestamps.to_pandas().array,
            "value": values,
        },
        index=pd.RangeIndex(first_row, first_row + batch.num_rows, name=ROW_INDEX),
    )


def _stripped_names(column: pa.Array) -> pd.Categorical:
    """Names stripped once per distinct name; an empty one is refused."""
    if not isinstance(column, pa.DictionaryArray):
        column = column.dictionary_encode()
    categories = [str(name).strip() for name in column.dictionary.to_pylist()]
    if "" in categories or len(set(categories)) != len(categories):
        # An empty name, or names that differ only by surrounding spaces: the exact reader
        # names the line (or merges the names).
        raise ImportFailed("empty or padded name")
    codes = column.indices.to_numpy(zero_copy_only=False)
    return pd.Categorical.from_codes(codes, categories=categories)


def parquet_chunks(path: Path, *, batch_rows: int = CHUNK_ROWS) -> Generator[pd.DataFrame]:
    """The Parquet file in row batches; problems name the row (1 is the first)."""
    try:
        # Pre-buffering keeps every row group it read until the file is closed (memory grew with
        # the file: 250 MB more for 20 million values); a read buffer streams a large row group
        # page by page instead of reading its column chunks whole.
        file = pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
    except FileNotFoundError:
        raise ImportFailed(f"no such file: {path}") from None
    except (pa.ArrowInvalid, OSError) as error:
        raise ImportFailed(f"cannot read the Parquet file: {error}") from None
    by_name = {name.strip().lower(): name for name in file.schema_arrow.names}
    check_columns(list(by_name))
    first_row = 1
    try:
        for batch in file.iter_batches(
            batch_size=batch_rows, columns=[by_name[column] for column in CSV_COLUMNS]
        ):
            yield _parquet_frame(batch, first_row)
            first_row += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ImportFailed(f"cannot read the Parquet file: {error}") from None
    except OSError as error:
        raise SourceFailed(f"reading {path} failed: {error}; nothing was written") from None


def _parquet_frame(batch: pa.RecordBatch, first_row: int) -> pd.DataFrame:
    rows = np.arange(first_row, first_row + batch.num_rows)
    object_column, feature_column, time_column, value_column = batch.columns
    frame = {}
    for name, column in (("object", object_column), ("feature", feature_column)):
        if column.null_count:
            _refuse(np.asarray(column.is_null()), rows, f"empty {name} name", None)
        frame[name] = _stripped_parquet_names(column.cast(pa.string()), rows, name)
    frame["timestamp"] = _parquet_timestamps(time_column, rows).array
    frame["value"] = _parquet_values(value_column, rows)
    return pd.DataFrame(frame, index=pd.Index(rows, name=ROW_INDEX))


def _stripped_parquet_names(column: pa.Array, rows: np.ndarray, what: str) -> pd.Categorical:
    encoded = column.dictionary_encode()
    categories = [str(name).strip() for name in encoded.dictionary.to_pylist()]
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    empty = np.array([name == "" for name in categories], dtype=bool)
    if empty.any():
        _refuse(empty[codes], rows, f"empty {what} name", None)
    uniques, merged = np.unique(np.array(categories, dtype=object), return_inverse=True)
    return pd.Categorical.from_codes(merged[codes], categories=list(uniques))


def _parquet_timestamps(column: pa.Array, rows: np.ndarray) -> pd.Series:
    text: pd.Series | None
    if pa.types.is_timestamp(column.type):
        stamps = pd.Series(column.to_pandas())
        stamps = (
            stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
        )
        text = None  # a missing timestamp has no text to show
    else:
        text = pd.Series(column.cast(pa.string()).to_pandas())
        stamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    if stamps.isna().any():
        _refuse(stamps.isna().to_numpy(), rows, "bad timestamp", text)
    return stamps.dt.as_unit("us")


def _parquet_values(column: pa.Array, rows: np.ndarray) -> np.ndarray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pd.Series(column.to_pandas())
        values = pd.to_numeric(text, errors="coerce").astype("float64").to_numpy()
        blank = text.isna() | text.str.strip().str.lower().isin(("", "nan"))
        bad = np.isnan(values) & ~blank.to_numpy()
        if bad.any():
            _refuse(bad, rows, "bad number", text)
    else:
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if np.isinf(values).any():
        _refuse(np.isinf(values), rows, "bad number", pd.Series(values))
    return values


def _refuse(bad: np.ndarray, rows: np.ndarray, what: str, shown: pd.Series | None) -> None:
    positions = np.flatnonzero(bad)
    first = int(positions[0])
    more = f" (and {positions.size - 1} more rows)" if positions.size > 1 else ""
    value = "" if shown is None else f" {str(shown.iloc[first]).strip()!r}"
    raise ImportFailed(f"row {rows[first]}: {what}{value}{more}")
