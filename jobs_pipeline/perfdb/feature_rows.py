"""An import's chunk as rows to write: ids in key order, one row per key, and the errors that
name a row (its line in the file) when two rows disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from jobs_pipeline.perfdb.errors import ImportFailed
from jobs_pipeline.perfdb.feature_csv import LINE_INDEX
from jobs_pipeline.perfdb.feature_files import ROW_INDEX

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Rows:
    """Rows to write, unique per key and sorted by (object_id, feature_id, timestamp)."""

    object_id: np.ndarray  # int64
    feature_id: np.ndarray  # int64
    micros: np.ndarray  # int64 microseconds since 1970-01-01 UTC
    value: np.ndarray  # float64, NaN = no data
    position: np.ndarray  # int64 row positions in the frame


def name_codes(names: pd.Series, what: str) -> tuple[np.ndarray, list[str]]:
    codes, uniques = pd.factorize(names)
    if (codes < 0).any():
        raise ImportFailed(f"row {int(np.flatnonzero(codes < 0)[0])}: missing {what}")
    return codes, [str(name) for name in uniques]


def ids_of(names: list[str], ids: dict[str, int]) -> np.ndarray:
    return np.array([ids[name] for name in names], dtype=np.int64)


def utc_microseconds(timestamps: pd.Series) -> np.ndarray:
    index = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).as_unit("us")
    if index.hasnans:
        raise ImportFailed(f"row {int(np.flatnonzero(index.isna())[0])}: missing timestamp")
    return index.asi8


class ConflictingDuplicate(Exception):
    """Two rows share a key but not a value: `row` and the `earlier` one (positions)."""

    def __init__(self, row: int, earlier: int) -> None:
        super().__init__(row, earlier)
        self.row = row
        self.earlier = earlier


def unique_rows_in_key_order(
    object_id: np.ndarray, feature_id: np.ndarray, micros: np.ndarray, value: np.ndarray
) -> Rows:
    position = np.arange(len(micros), dtype=np.int64)
    """Sorts by key and keeps one of duplicate rows, which must agree (NaN agrees with NaN):
    otherwise `ConflictingDuplicate` names the first row, in input order, whose value differs
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
            raise ConflictingDuplicate(int(rows[first]), int(order[:-1][differs][first]))
        kept = np.ones(len(order), dtype=bool)
        kept[:-1] = ~repeated
        object_id, feature_id, micros = object_id[kept], feature_id[kept], micros[kept]
        value, position = value[kept], position[kept]
    return Rows(
        object_id=object_id, feature_id=feature_id, micros=micros, value=value, position=position
    )


def row_name(frame: pd.DataFrame, position: int) -> str:
    """How an error names a row: its line in the file for `parse_feature_csv`'s frames."""
    if frame.index.name in (LINE_INDEX, ROW_INDEX):
        return f"{frame.index.name} {frame.index[position]}"
    return f"row {position}"


def describe_conflict(
    frame: pd.DataFrame, micros: np.ndarray, values: np.ndarray, conflict: ConflictingDuplicate
) -> str:
    row, earlier = conflict.row, conflict.earlier
    timestamp = (_EPOCH + timedelta(microseconds=int(micros[row]))).isoformat()
    key = f"{frame['object'].iloc[row]!r}, {frame['feature'].iloc[row]!r}, {timestamp}"
    return (
        f"{row_name(frame, row)}: duplicate of {row_name(frame, earlier)} ({key}) with "
        f"another value: {shown_value(values[row])} instead of {shown_value(values[earlier])}"
    )


def _strictly_increasing(after: tuple[np.ndarray, ...], before: tuple[np.ndarray, ...]) -> bool:
    (o1, f1, t1), (o0, f0, t0) = after, before
    return bool(np.all((o1 > o0) | ((o1 == o0) & ((f1 > f0) | ((f1 == f0) & (t1 > t0))))))


def shown_value(value: float | None) -> str:
    return "no value" if value is None or np.isnan(value) else f"{value:g}"
