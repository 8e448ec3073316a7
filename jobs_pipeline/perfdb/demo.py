"""Stores a synthetic demo fleet: features, values and the alarm definitions its faults trip."""

from __future__ import annotations

from dataclasses import dataclass

from jobs_pipeline.calc.synthetic_fleet import SyntheticFleet
from jobs_pipeline.perfdb import PerfDB


@dataclass(frozen=True, kw_only=True)
class DemoSummary:
    objects: int
    features: int
    alarms: int
    values: int


def store_fleet(perfdb: PerfDB, fleet: SyntheticFleet) -> DemoSummary:
    for feature in fleet.features:
        perfdb.catalog.ensure_feature(
            feature.name, unit=feature.unit, sampling_period=feature.sampling_period
        )
    summary = perfdb.values.import_frame(fleet.values)
    for alarm in fleet.alarms:
        perfdb.catalog.define_alarm(
            alarm_id=alarm.alarm_id,
            name=alarm.name,
            feature=alarm.feature,
            operator=alarm.operator,
            threshold=alarm.threshold,
            clear_threshold=alarm.clear_threshold,
            min_duration=alarm.min_duration,
        )
    return DemoSummary(
        objects=len(fleet.object_names),
        features=len(fleet.features),
        alarms=len(fleet.alarms),
        values=summary.rows,
    )
