"""`JobAlarmCalc`: alarm threshold occurrences for objects x alarms over a period."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

from jobs_pipeline.calc import (
    AlarmCalcThreshold,
    DateTimeRange,
    assess_data_quality,
    parse_timestamp,
)
from jobs_pipeline.jobs.base import JobInstance, JobStepError, StepOutput
from jobs_pipeline.jobs.registry import register
from jobs_pipeline.jobs.settings import min_coverage_percent, step_pictures
from jobs_pipeline.jobs.step_details import data_quality_details
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InvalidParameters
from jobs_pipeline.perfdb.occurrences import replace_occurrences
from jobs_pipeline.perfdb.records import AlarmDefinition, Step

PARAMETERS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Alarm Calculation parameters",
    "type": "object",
    "properties": {
        "object_names": {
            "description": "Objects to calculate, e.g. ['LAN-01', 'LAN-02'].",
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "uniqueItems": True,
        },
        "alarm_ids": {
            "description": "Manufacturer alarm ids of the alarm definitions to evaluate.",
            "type": "array",
            "items": {"type": "integer"},
            "minItems": 1,
            "uniqueItems": True,
        },
        "start": {
            "description": "Period start (inclusive): 'YYYY-MM-DD HH:MM:SS' (UTC) or ISO 8601.",
            "type": "string",
        },
        "end": {
            "description": "Period end (exclusive): 'YYYY-MM-DD HH:MM:SS' (UTC) or ISO 8601.",
            "type": "string",
        },
    },
    "required": ["object_names", "alarm_ids", "start", "end"],
    "additionalProperties": False,
}


def parse_period(parameters: dict[str, Any]) -> DateTimeRange:
    """The job's half-open period; `InvalidParameters` names the bad field."""
    try:
        start_text, end_text = parameters["start"], parameters["end"]
    except KeyError as missing:
        raise InvalidParameters(f"parameter {missing.args[0]!r} is missing") from None
    bounds = {}
    for name, text in (("start", start_text), ("end", end_text)):
        try:
            bounds[name] = parse_timestamp(text)
        except ValueError as error:
            raise InvalidParameters(f"parameter '{name}': {error}") from None
    try:
        return DateTimeRange(bounds["start"], bounds["end"])
    except ValueError as error:
        raise InvalidParameters(f"parameters 'start'/'end': {error}") from None


@register
class JobAlarmCalc(JobInstance):
    """Finds alarm occurrences for each (object, alarm) pair over the job's period."""

    _name = "Alarm Calculation"
    _description = (
        "Alarm threshold occurrences for each (object, alarm) pair over a half-open period"
    )
    _parameters_schema = PARAMETERS_SCHEMA

    _period: DateTimeRange
    _alarm_cache: dict[int, AlarmDefinition] | None

    @classmethod
    def check_parameters(cls, perfdb: PerfDB, parameters: dict[str, Any]) -> None:
        parse_period(parameters)
        perfdb.catalog.object_ids(parameters["object_names"])
        perfdb.catalog.alarms(parameters["alarm_ids"])

    def _prepare(self) -> None:
        self._period = parse_period(self.parameters)
        self._alarm_cache = None

    @property
    def period(self) -> DateTimeRange:
        return self._period

    def _alarms(self) -> dict[int, AlarmDefinition]:
        # One query for the whole job, not one per step.
        if self._alarm_cache is None:
            self._alarm_cache = self.perfdb.catalog.alarms(self.parameters["alarm_ids"])
        return self._alarm_cache

    def _create_steps(self) -> list[dict[str, Any]]:
        object_ids = self.perfdb.catalog.object_ids(self.parameters["object_names"])
        alarms = self._alarms()
        return [
            {
                "object_id": object_ids[object_name],
                "alarm_id": alarm_id,
                "feature_id": alarms[alarm_id].feature.id,
            }
            for object_name in self.parameters["object_names"]
            for alarm_id in self.parameters["alarm_ids"]
        ]

    def _run_step(self, step_id: int) -> StepOutput:
        step = self.steps[step_id]
        if step.alarm_id is None:
            raise JobStepError(f"step {step_id} has no alarm")
        alarm = self._alarms().get(step.alarm_id)
        if alarm is None:
            raise JobStepError(f"alarm {step.alarm_id} is not defined")
        period = self._period

        try:
            min_coverage = min_coverage_percent()
        except ValueError as error:
            raise JobStepError(str(error)) from None

        read_started = time.perf_counter()
        values = self.perfdb.values.read(step.object_id, alarm.feature.id, period.start, period.end)
        compute_started = time.perf_counter()
        quality = assess_data_quality(values, period, alarm.feature.sampling_period)
        if quality.samples == quality.nan_samples:
            raise JobStepError(
                f"no data for feature {alarm.feature.name!r} of object {step.object_name!r} "
                f"in {period}"
            )
        rule = AlarmCalcThreshold(
            operator=alarm.operator,
            threshold=alarm.threshold,
            clear_threshold=alarm.clear_threshold,
            min_duration=alarm.min_duration,
            sampling_period=alarm.feature.sampling_period,
        )
        # Named tuples (start, end, peak value), as `replace_occurrences` takes them.
        spans = rule.find_occurrences(values, period)
        computed = time.perf_counter()

        def write(connection: Connection) -> None:
            # Runs in the transaction that marks the step Finished (see `StepOutput`).
            replace_occurrences(
                connection,
                object_id=step.object_id,
                alarm_id=alarm.id,
                start=period.start,
                end=period.end,
                spans=spans,
                step_id=step_id,
            )

        return StepOutput(
            details={
                "object": step.object_name,
                "alarm_id": alarm.id,
                "alarm": alarm.name,
                "feature": alarm.feature.name,
                **data_quality_details(quality),
                "occurrences_written": len(spans),
                "read_seconds": compute_started - read_started,
                "compute_seconds": computed - compute_started,
            },
            note=quality.low_coverage_note(min_coverage),
            write=write,
            picture=self._picture(step, alarm, values, spans) if step_pictures() else None,
        )

    def _picture(
        self, step: Step, alarm: AlarmDefinition, values: pd.Series, spans: Sequence[Any]
    ) -> Callable[[], bytes]:
        from jobs_pipeline.report import alarm_timeline_png
        from jobs_pipeline.report.timeline import alarm_timeline

        timeline = alarm_timeline(
            alarm,
            object_name=step.object_name,
            start=self._period.start,
            end=self._period.end,
            values=values,
            occurrences=[(span[0], span[1]) for span in spans],
        )
        # Small: a run of thousands of steps keeps its event log light.
        return lambda: alarm_timeline_png(timeline, width=7.0, height=2.6, dpi=72)
