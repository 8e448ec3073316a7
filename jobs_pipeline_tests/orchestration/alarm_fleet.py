"""The small fleet of the orchestration tests, written by `seed_fleet` (the `seeded_db` fixture):
hand-made samples, two alarms, the occurrences they give, and an Alarm Calculation job over it.

The fleet: LAN-01 and LAN-02 have twelve 10-minute temperature samples in the period, LAN-03
exists but has no data (its steps fail until `import_missing_values` adds them). Two alarm
definitions watch the temperature: HIGH (> 80) and VERY_HIGH (> 92).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd

from jobs_pipeline.jobs import create_job
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import Job

ALARM_CALC = "Alarm Calculation"
FEATURE = "temperature"
HIGH = 1001
VERY_HIGH = 1002
ALARM_IDS = (HIGH, VERY_HIGH)
WITH_DATA = ("LAN-01", "LAN-02")
NO_DATA = "LAN-03"
ALL_OBJECTS = (*WITH_DATA, NO_DATA)

T0 = datetime(2024, 3, 1, tzinfo=UTC)
SAMPLE = timedelta(minutes=10)
PERIOD = {"start": "2024-03-01 00:00:00", "end": "2024-03-01 02:00:00"}

# Twelve samples from T0, i.e. the whole period [00:00, 02:00).
SAMPLES = {
    "LAN-01": [70, 85, 90, 70, 70, 95, 96, 70, 70, 70, 81, 70],
    "LAN-02": [70, 70, 70, 88, 70, 70, 70, 70, 70, 70, 70, 70],
}
MISSING_SAMPLES = {NO_DATA: [93, 93, 70, 70, 70, 70, 70, 70, 70, 70, 70, 70]}

# Occurrences per (object, alarm) once every object has its samples.
EXPECTED_OCCURRENCES: dict[tuple[str, int | None], int] = {
    ("LAN-01", HIGH): 3,  # [00:10, 00:30), [00:50, 01:10), [01:40, 01:50)
    ("LAN-01", VERY_HIGH): 1,  # [00:50, 01:10)
    ("LAN-02", HIGH): 1,  # [00:30, 00:40)
    ("LAN-02", VERY_HIGH): 0,
    (NO_DATA, HIGH): 1,  # [00:00, 00:20)
    (NO_DATA, VERY_HIGH): 1,  # [00:00, 00:20)
}


def sample_frame(samples: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"object": name, "feature": FEATURE, "timestamp": T0 + i * SAMPLE, "value": value}
            for name, values in samples.items()
            for i, value in enumerate(values)
        ]
    )


def import_missing_values(perfdb: PerfDB) -> None:
    """Removes the cause of LAN-03's failures."""
    perfdb.values.import_frame(sample_frame(MISSING_SAMPLES))


def alarm_job(
    perfdb: PerfDB,
    objects: Sequence[str] = ALL_OBJECTS,
    *,
    description: str = "nightly alarms",
    queue: bool = True,
) -> Job:
    """An Alarm Calculation job over the period, checked like the CLI checks it."""
    parameters = {"object_names": list(objects), "alarm_ids": list(ALARM_IDS), **PERIOD}
    return create_job(perfdb, ALARM_CALC, parameters, description=description, queue=queue)


def occurrence_counts(perfdb: PerfDB) -> dict[tuple[str, int | None], int]:
    counts = dict.fromkeys(EXPECTED_OCCURRENCES, 0)
    for occurrence in perfdb.occurrences.list():
        counts[occurrence.object_name, occurrence.alarm_id] += 1
    return counts


def seed_fleet(perfdb: PerfDB) -> PerfDB:
    """Writes the fleet described at the top of this module."""
    perfdb.values.import_frame(sample_frame(SAMPLES))
    perfdb.catalog.ensure_objects([NO_DATA])
    perfdb.catalog.define_alarm(
        alarm_id=HIGH, name="Temperature high", feature=FEATURE, operator=">", threshold=80
    )
    perfdb.catalog.define_alarm(
        alarm_id=VERY_HIGH,
        name="Temperature very high",
        feature=FEATURE,
        operator=">",
        threshold=92,
    )
    return perfdb
