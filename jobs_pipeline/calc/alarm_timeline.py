"""What a picture of one alarm on one object shows: a value type, drawn by `report`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd


@dataclass(frozen=True, kw_only=True)
class AlarmTimeline:
    """What the picture shows. `values` is a float Series on a UTC DatetimeIndex (NaN = no
    data); `occurrences` are (start, end) pairs, end exclusive."""

    object_name: str
    alarm_id: int
    alarm_name: str
    feature: str
    unit: str
    operator: str
    threshold: float
    clear_threshold: float | None
    sampling_period: timedelta
    start: datetime
    end: datetime
    values: pd.Series
    occurrences: Sequence[tuple[datetime, datetime]] = field(default_factory=tuple)
