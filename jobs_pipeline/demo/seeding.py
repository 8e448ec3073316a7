"""Stores a synthetic demo fleet: features, values and the alarm definitions its faults trip."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs_pipeline.demo.synthetic_fleet import SyntheticFleet
from jobs_pipeline.perfdb import PerfDB


@dataclass(frozen=True, kw_only=True)
class DemoSummary:
    objects: int
    features: int
    alarms: int
    values: int
    objects_kept: list[str] = field(default_factory=list)
    alarms_kept: list[int] = field(default_factory=list)


def store_fleet(perfdb: PerfDB, fleet: SyntheticFleet) -> DemoSummary:
    """Stores the fleet without touching what is there already: objects that have values keep
    them (their synthetic values are left out) and alarm ids already defined keep their
    definition, so seeding twice, or over real data, overwrites nothing."""
    for feature in fleet.features:
        perfdb.catalog.ensure_feature(
            feature.name, unit=feature.unit, sampling_period=feature.sampling_period
        )
    kept = set(perfdb.values.objects_with_values(fleet.object_names))
    values = fleet.values[~fleet.values["object"].isin(kept)]
    summary = perfdb.values.import_frame(values) if len(values) else None
    defined = {alarm.id for alarm in perfdb.catalog.list_alarms()}
    for alarm in fleet.alarms:
        if alarm.alarm_id in defined:
            continue
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
        objects=len(fleet.object_names) - len(kept),
        features=len(fleet.features),
        alarms=len([alarm for alarm in fleet.alarms if alarm.alarm_id not in defined]),
        values=summary.rows if summary else 0,
        objects_kept=sorted(kept),
        alarms_kept=sorted(alarm.alarm_id for alarm in fleet.alarms if alarm.alarm_id in defined),
    )
