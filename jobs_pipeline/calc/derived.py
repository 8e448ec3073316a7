"""Values of a derived feature: its inputs aligned on one time axis, then its expression.

The derived values are stamped with the timestamps of the expression's first input (the first
feature name in its text: `dc_voltage` in `dc_voltage * dc_current`). Every other input takes
its sample at the same timestamp, else the nearest sample within half of that input's sampling
period (either side; exactly half a period still counts), else it has no value there (NaN), and
so has the result. A sample stored as "no data" (NaN) at the very timestamp stays NaN: a value
nearby does not stand in for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import numpy as np
import pandas as pd

from jobs_pipeline.calc.expressions import Expression


def align_to(index: pd.DatetimeIndex, values: pd.Series, tolerance: timedelta) -> np.ndarray:
    """The values of `values` at each timestamp of `index`: the sample at the same timestamp,
    else the nearest one at most `tolerance` away, else NaN.

    Args:
        index: Sorted, unique UTC timestamps to align to.
        values: A float Series on a sorted, unique UTC DatetimeIndex (NaN = no data).
        tolerance: The largest distance to a sample that still counts; inclusive.

    Returns:
        A float64 array as long as `index`.
    """
    if len(index) == 0:
        return np.empty(0, dtype="float64")
    if len(values) == 0:
        return np.full(len(index), np.nan)
    left = pd.DataFrame({"timestamp": _nanoseconds(index)})
    right = pd.DataFrame(
        {"timestamp": _nanoseconds(values.index), "value": values.to_numpy(dtype="float64")}
    )
    merged = pd.merge_asof(
        left,
        right,
        on="timestamp",
        direction="nearest",
        tolerance=int(tolerance.total_seconds() * 1_000_000_000),
        allow_exact_matches=True,
    )
    return merged["value"].to_numpy(dtype="float64")


def derive_values(
    expression: Expression,
    inputs: Mapping[str, pd.Series],
    sampling_periods: Mapping[str, timedelta],
) -> pd.Series:
    """The expression over its inputs, aligned as the module says.

    Args:
        expression: A parsed expression.
        inputs: For each name of the expression, its values as a float Series on a sorted,
            unique UTC DatetimeIndex.
        sampling_periods: For each name, the input's sampling period.

    Returns:
        A float Series on the first input's timestamps; NaN where an input has no value or the
        result is not finite.
    """
    first = expression.names[0]
    index = pd.DatetimeIndex(inputs[first].index)
    arrays = {first: inputs[first].to_numpy(dtype="float64")}
    for name in expression.names[1:]:
        arrays[name] = align_to(index, inputs[name], sampling_periods[name] / 2)
    return pd.Series(expression.evaluate(arrays, length=len(index)), index=index)


def _nanoseconds(index: pd.Index) -> np.ndarray:
    return pd.DatetimeIndex(index).as_unit("ns").asi8
