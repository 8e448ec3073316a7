"""Evaluations of the code location's queue sensor in a test, as the daemon would run them: `tick`
and the `Tick` it gives (run requests, skip reason, cursor)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import dagster as dg

from jobs_pipeline.definitions import defs
from jobs_pipeline.orchestration.resources import PerfDBResource


def sensor_named(name: str) -> Any:
    return next(sensor for sensor in defs.sensors or () if sensor.name == name)


QUEUE_SENSOR = sensor_named("perfdb_queue_sensor")


@dataclass(frozen=True)
class Tick:
    run_requests: list[dg.RunRequest]
    skip_reason: str | None
    cursor: str | None

    @property
    def run_keys(self) -> list[str | None]:
        return [request.run_key for request in self.run_requests]


def tick(
    resource: PerfDBResource,
    cursor: str | None = None,
    instance: dg.DagsterInstance | None = None,
) -> Tick:
    """One evaluation of the queue sensor, as the daemon would run it (on an empty Dagster
    instance unless given one)."""
    with ExitStack() as stack:
        if instance is None:
            instance = stack.enter_context(dg.DagsterInstance.ephemeral())
        context = dg.build_sensor_context(
            resources={"perfdb": resource}, cursor=cursor, instance=instance
        )
        result = QUEUE_SENSOR(context)
    if isinstance(result, dg.SkipReason):
        return Tick([], result.skip_message, context.cursor)
    assert isinstance(result, dg.SensorResult)
    return Tick(list(result.run_requests or []), None, context.cursor)
