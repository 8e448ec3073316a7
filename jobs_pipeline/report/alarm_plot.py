"""An alarm's timeline read from the performance database, for `alarms plot`."""

from __future__ import annotations

from datetime import datetime

from jobs_pipeline.calc.alarm_timeline import AlarmTimeline
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InputError


def stored_timeline(
    perfdb: PerfDB, object_name: str, alarm_id: int, start: datetime, end: datetime
) -> AlarmTimeline:
    """The values of the alarm's feature for the object in [start, end), with the
    occurrences stored for that pair that start inside the period."""
    object_id = perfdb.catalog.object_ids([object_name])[object_name]
    alarm = perfdb.catalog.alarms([alarm_id])[alarm_id]
    if not start < end:
        raise InputError(f"the start {start.isoformat()} is not before the end {end.isoformat()}")
    values = perfdb.values.read(object_id, alarm.feature.id, start, end)
    occurrences = [
        (occurrence.start, occurrence.end)
        for occurrence in perfdb.occurrences.list(object_name=object_name, alarm_id=alarm_id)
        if start <= occurrence.start < end
    ]
    return alarm.timeline(
        object_name=object_name, start=start, end=end, values=values, occurrences=occurrences
    )
