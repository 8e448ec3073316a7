"""DataFrames of alarm occurrences built straight from their arrays.

A calculation over a year of one feature takes tens of microseconds, and the `DataFrame`
constructor's checks and type inference would cost about as much again per call. The columns'
types are known here, so the frame is assembled from its blocks with pandas' internal block
classes. Those are not public API: if a pandas release moves them, `FAST` is False, a warning
says so and the public constructor builds the very same frame, only slower
(`test_alarm_threshold.py` compares both and is the tripwire for an upgrade).
"""

from __future__ import annotations

import warnings
from datetime import UTC
from typing import Final

import numpy as np
import pandas as pd

COLUMNS: Final = ("start", "end", "peak_value")
"""Columns of an occurrence frame, in order."""

_COLUMNS_INDEX: Final = pd.Index(COLUMNS)
_UTC_NS: Final = pd.DatetimeTZDtype("ns", UTC)

try:
    from pandas._libs.internals import BlockPlacement
    from pandas.arrays import DatetimeArray
    from pandas.core.internals import BlockManager
    from pandas.core.internals.blocks import DatetimeLikeBlock, NumpyBlock

    _new_datetimes = DatetimeArray._simple_new
    # start and end share one 2-D block, peak_value has its own.
    _STAMPS_PLACEMENT: Final = BlockPlacement(slice(0, 2))
    _PEAK_PLACEMENT: Final = BlockPlacement(slice(2, 3))
    _from_manager = pd.DataFrame._from_mgr
    # A RangeIndex from a range without the public constructor's argument checks.
    _new_range_index = pd.RangeIndex._simple_new
    FAST = True
except (ImportError, AttributeError) as missing:  # pragma: no cover - depends on pandas
    warnings.warn(
        f"pandas internals changed ({missing}): occurrence frames use the slower public "
        "constructor",
        RuntimeWarning,
        stacklevel=1,
    )
    FAST = False


def occurrence_frame(bounds: np.ndarray, peak_value: np.ndarray) -> pd.DataFrame:
    """The frame of occurrences given as arrays; it takes both arrays over without a copy.

    Args:
        bounds: ``datetime64[ns]`` in UTC, two rows: the starts and the (exclusive) ends.
        peak_value: ``float64``, one per column of ``bounds``.

    Returns:
        One row per occurrence with a default `RangeIndex` and the columns `COLUMNS`: ``start``
        and ``end`` as ``datetime64[ns, UTC]``, ``peak_value`` as ``float64``.
    """
    if FAST:
        return _fast_frame(bounds, peak_value)
    return public_frame(bounds, peak_value)


def public_frame(bounds: np.ndarray, peak_value: np.ndarray) -> pd.DataFrame:
    """`occurrence_frame` through pandas' public constructor only."""
    start, end, peak = COLUMNS
    return pd.DataFrame(
        {
            start: pd.Series(bounds[0], dtype="datetime64[ns]").dt.tz_localize("UTC"),
            end: pd.Series(bounds[1], dtype="datetime64[ns]").dt.tz_localize("UTC"),
            peak: pd.Series(peak_value, dtype="float64"),
        }
    )


def _fast_frame(bounds: np.ndarray, peak_value: np.ndarray) -> pd.DataFrame:
    rows = len(peak_value)
    # Each frame gets index objects of its own, as pandas' shallow copies do: an index's name
    # can be set in place, and it must not show on other frames.
    blocks = (
        DatetimeLikeBlock(_new_datetimes(bounds, dtype=_UTC_NS), _STAMPS_PLACEMENT, 2),
        NumpyBlock(peak_value.reshape(1, rows), _PEAK_PLACEMENT, 2),
    )
    manager = BlockManager(
        blocks, [_COLUMNS_INDEX.view(), _new_range_index(range(rows))], verify_integrity=False
    )
    return _from_manager(manager, manager.axes)
