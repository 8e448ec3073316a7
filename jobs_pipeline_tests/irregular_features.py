"""Three features of one turbine whose timestamps are not on the epoch grid of their 10-minute
sampling period, one alarm on each, and what the alarm rule gives over the period, worked out by
hand: an offset grid (:05, :15, ...), stamps jittered by tens of seconds with a missing sample,
and samples 1 to 14 minutes apart with holes. A grid-only calculation finds none of this."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from jobs_pipeline.perfdb import PerfDB

NAN = math.nan
OBJECT = "WT-09"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
OFFSET = 8101  # offset_temperature > 80
JITTER = 8102  # jitter_temperature > 80, stays active while > 75
IRREGULAR = 8103  # irregular_pressure < 2, at least 10 minutes
ALARM_IDS = (OFFSET, JITTER, IRREGULAR)
PARAMETERS: dict[str, Any] = {
    "object_names": [OBJECT],
    "alarm_ids": list(ALARM_IDS),
    "start": "2024-03-01 00:00:00",
    "end": "2024-03-01 04:00:00",
}


def at(minutes: float, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


# Every 10 minutes from 00:05; the samples just outside the period trip the alarm.
OFFSET_VALUES = {5 + 10 * k: 70.0 for k in range(24)} | {
    -5: 99.0,
    25: 85.0,
    35: 90.0,
    45: 82.0,
    105: 81.0,
    145: 95.0,
    155: NAN,
    235: 88.0,
    245: 99.0,
}
# Every 10 minutes from 00:00, each off by the seconds given; the sample at 02:00 is missing.
JITTER_SECONDS = [20, -30, 45, -15, 30, -40, 10, 35, -25, 5, 40, -35, None, 15, -20, 30]
JITTER_SECONDS += [-45, 25, -10, 40, -30, 20, -15, -5]
JITTER_LEVELS = {3: 85.0, 4: 78.0, 5: 76.0, 10: 90.0, 11: 88.0, 13: 77.0, 14: 92.0, 15: 79.0}
JITTER_LEVELS |= {16: 74.0, 23: 81.0}
IRREGULAR_VALUES = {
    0: 3.0,
    1: 1.5,
    4: 1.2,
    18: 1.0,  # 14 minutes on: contiguous
    20: 2.5,
    27: 1.8,
    36: 2.2,
    37: 1.9,
    49: 1.7,
    52: 1.6,
    60: 1.5,
    81: 1.4,  # 21 minutes on: a gap
    83: 3.0,
    95: 1.0,
    100: NAN,
    113: 1.9,
    120: 1.95,
    134: 1.3,
    140: 2.0,
    150: 1.1,
    165: 1.2,  # exactly 15 minutes (1.5 periods) on: contiguous
    178: 2.6,
    190: 1.0,
    205.5: 1.6,  # 15.5 minutes on: a gap
    213: 1.4,
    227: 1.2,
    238: 1.5,
    245: 0.1,  # after the period
}


def jitter_stamp(k: int) -> datetime:
    seconds = JITTER_SECONDS[k]
    assert seconds is not None
    return at(10 * k, seconds)


def rows() -> pd.DataFrame:
    """The samples as `import_frame` takes them."""
    samples: list[tuple[str, datetime, float]] = [
        ("offset_temperature", at(m), v) for m, v in OFFSET_VALUES.items()
    ]
    samples += [
        ("jitter_temperature", jitter_stamp(k), JITTER_LEVELS.get(k, 70.0))
        for k, seconds in enumerate(JITTER_SECONDS)
        if seconds is not None
    ]
    samples += [("irregular_pressure", at(m), v) for m, v in IRREGULAR_VALUES.items()]
    frame = pd.DataFrame(samples, columns=["feature", "timestamp", "value"])
    frame.insert(0, "object", OBJECT)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


# (id, name, feature, operator, threshold, further settings)
ALARMS: list[tuple[int, str, str, str, float, dict[str, Any]]] = [
    (OFFSET, "Offset hot", "offset_temperature", ">", 80, {}),
    (JITTER, "Jitter hot", "jitter_temperature", ">", 80, {"clear_threshold": 75}),
    (IRREGULAR, "Pressure low", "irregular_pressure", "<", 2, {"min_duration": 10 * MINUTE}),
]


def store(perfdb: PerfDB) -> None:
    """The samples and the three alarm definitions (the features keep the default period)."""
    perfdb.values.import_frame(rows())
    for alarm_id, name, feature, operator, threshold, settings in ALARMS:
        perfdb.catalog.define_alarm(
            alarm_id=alarm_id,
            name=name,
            feature=feature,
            operator=operator,
            threshold=threshold,
            **settings,
        )


# (alarm, start, end, peak, open) in time order per alarm: the whole episodes that overlap the
# period, read before and after it; each alarm is still active at its feature's last sample.
EXPECTED_OCCURRENCES: list[tuple[int, datetime, datetime, float, bool]] = [
    (OFFSET, at(-5), at(5), 99.0, False),  # began before the period
    (OFFSET, at(25), at(55), 90.0, False),
    (OFFSET, at(105), at(115), 81.0, False),
    (OFFSET, at(145), at(155), 95.0, False),  # ends where the NaN sample starts
    (OFFSET, at(235), at(255), 99.0, True),  # goes on past the period end
    (JITTER, jitter_stamp(3), jitter_stamp(6), 85.0, False),
    (JITTER, jitter_stamp(10), jitter_stamp(11) + 10 * MINUTE, 90.0, False),  # gap after
    (JITTER, jitter_stamp(14), jitter_stamp(16), 92.0, False),
    (JITTER, jitter_stamp(23), jitter_stamp(23) + 10 * MINUTE, 81.0, True),
    (IRREGULAR, at(1), at(20), 1.0, False),
    (IRREGULAR, at(37), at(70), 1.5, False),  # 60 covers ten minutes, then a gap
    (IRREGULAR, at(113), at(140), 1.3, False),
    (IRREGULAR, at(150), at(178), 1.1, False),
    (IRREGULAR, at(190), at(200), 1.0, False),  # exactly the minimum duration
    (IRREGULAR, at(205.5), at(255), 0.1, True),  # to the sample after the period
]

# The data-quality figures of each alarm's step.
EXPECTED_QUALITY: dict[int, dict[str, Any]] = {
    # Nothing read covers [00:00, 00:05); the NaN sample's ten minutes are not coverage.
    OFFSET: {
        "samples_read": 24,
        "nan_samples": 1,
        "gaps": 1,
        "gap_seconds": 300.0,
        "coverage_percent": 93.75,
    },
    # 20 s at the start, 10 min 50 s where the 02:00 sample is missing, 5 s at the end.
    JITTER: {
        "samples_read": 23,
        "nan_samples": 0,
        "gaps": 3,
        "gap_seconds": 675.0,
        "coverage_percent": 95.31,
    },
    # [01:10, 01:21) and [03:20, 03:25:30); the NaN sample covers 13 minutes.
    IRREGULAR: {
        "samples_read": 27,
        "nan_samples": 1,
        "gaps": 2,
        "gap_seconds": 990.0,
        "coverage_percent": 87.7,
    },
}


def occurrences(perfdb: PerfDB) -> list[tuple[int, datetime, datetime, float | None, bool]]:
    """What is stored, as (alarm, start, end, peak, open), for the object of these features."""
    return [
        (o.alarm_id, o.start, o.end, o.peak_value, o.open)
        for o in perfdb.occurrences.list(object_name=OBJECT)
    ]
