"""`JobAlarmCalc`: alarm threshold occurrences for objects x alarms over a period."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

from jobs_pipeline import settings
from jobs_pipeline.calc import (
    AlarmCalcThreshold,
    DateTimeRange,
    Episodes,
    assess_data_quality,
    format_duration,
    parse_timestamp,
)
from jobs_pipeline.calc.alarm_timeline import AlarmTimeline
from jobs_pipeline.jobs.base import JobInstance, JobStepError, StepOutput, StepWrite
from jobs_pipeline.jobs.registry import register
from jobs_pipeline.jobs.step_details import data_quality_details
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InvalidParameters
from jobs_pipeline.perfdb.occurrences import OccurrenceSpan, replace_occurrences
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
            min_coverage = settings.MIN_COVERAGE_PERCENT.read()
            look_back = settings.ALARM_LOOK_BACK.read()
            draw = settings.STEP_PICTURES.read()
        except ValueError as error:
            raise JobStepError(str(error)) from None

        started = time.perf_counter()
        search = _EpisodeSearch(self.perfdb, step, alarm, period, look_back)
        quality = assess_data_quality(search.values, period, alarm.feature.sampling_period)
        rule = AlarmCalcThreshold(
            operator=alarm.operator,
            threshold=alarm.threshold,
            clear_threshold=alarm.clear_threshold,
            min_duration=alarm.min_duration,
            sampling_period=alarm.feature.sampling_period,
        )
        episodes = search.run(rule)
        # An episode from before the period that reaches into it is data about the period.
        if quality.samples == quality.nan_samples and not len(episodes.start):
            raise JobStepError(
                f"no data for feature {alarm.feature.name!r} of object {step.object_name!r} "
                f"in {period}"
            )
        spans = _spans(episodes)
        computed = time.perf_counter()
        look_back_note = _look_back_note(episodes, spans, look_back)

        def write(connection: Connection) -> None:
            # Runs in the transaction that marks the step Finished (see `StepOutput`).
            replace_occurrences(
                connection,
                object_id=step.object_key,
                alarm_id=alarm.id,
                start=search.target.start,
                end=search.target.end,
                spans=spans,
                step_id=step_id,
                joins_earlier=episodes.earlier_needed,
                joins_later=episodes.later_needed,
                combine_peaks=rule.more_extreme,
            )

        notes = [quality.low_coverage_note(min_coverage), look_back_note]
        return StepOutput(
            details={
                "object": step.object_name,
                "alarm_id": alarm.id,
                "alarm": alarm.name,
                "feature": alarm.feature.name,
                **data_quality_details(quality),
                "occurrences_written": len(spans),
                "open_occurrences": sum(span.open for span in spans),
                "read_start": search.read.start.isoformat(),
                "read_end": search.read.end.isoformat(),
                **({"look_back_exceeded": look_back_note} if look_back_note else {}),
                "read_seconds": search.read_seconds,
                "compute_seconds": computed - started - search.read_seconds,
            },
            note="; ".join(note for note in notes if note) or None,
            write=write,
            picture=self._picture(step, alarm, search.values, spans) if draw else None,
            wrote=StepWrite(
                rows=len(spans),
                alarm_id=alarm.id,
                object_name=step.object_name,
                period=search.target,
            ),
        )

    def _picture(
        self, step: Step, alarm: AlarmDefinition, values: pd.Series, spans: Sequence[Any]
    ) -> AlarmTimeline:
        # What the step looked at; the orchestration draws it (the job layer draws nothing).
        return alarm.timeline(
            object_name=step.object_name or "",
            start=self._period.start,
            end=self._period.end,
            values=values,
            occurrences=[(span[0], span[1]) for span in spans],
        )


# What a step reads on either side of its period at first: most episodes are shorter.
_FIRST_MARGIN = timedelta(hours=2)


class _EpisodeSearch:
    """The samples a step reads: its period and a margin around it first, then further before
    and after it, up to the look-back, until the episodes that cross its ends are whole (most
    steps need no second read).

    Attributes:
        target: The range whose episodes the step replaces: its period, from the start of an
            open occurrence stored before it (within the look-back), so that the step closes or
            extends that one.
        values: The samples read so far, in time order.
        read: The range they were read from.
        read_seconds: Time spent reading.
    """

    def __init__(
        self,
        perfdb: PerfDB,
        step: Step,
        alarm: AlarmDefinition,
        period: DateTimeRange,
        look_back: timedelta,
    ) -> None:
        self._perfdb, self._step, self._feature_id = perfdb, step, alarm.feature.id
        self._floor, self._ceiling = period.start - look_back, period.end + look_back
        self.read_seconds = 0.0
        started = time.perf_counter()
        self.target = period
        context = perfdb.occurrences.episode_context(step.object_key, alarm.id, alarm.feature.id)
        open_start = context.open_start
        if open_start is not None and self._floor <= open_start < period.start:
            self.target = DateTimeRange(open_start, period.end)
        self._first = context.first_sample
        self._last = context.last_sample
        # Widened only when an episode reaches the margin.
        margin = min(look_back, max(_FIRST_MARGIN, 12 * alarm.feature.sampling_period))
        self.read = DateTimeRange(max(self._floor, self.target.start - margin), period.end + margin)
        self.values = perfdb.values.read(
            step.object_key, self._feature_id, self.read.start, self.read.end
        )
        self.read_seconds += time.perf_counter() - started

    def run(self, rule: AlarmCalcThreshold) -> Episodes:
        """The episodes that overlap the target, whole unless longer than the look-back."""
        first = self._first or self.read.start
        last = self._last or self.read.start
        while True:
            read, values = self.read, self.values
            episodes = rule.find_episodes(
                values,
                self.target,
                read,
                more_before=read.start > first,
                more_after=read.end <= last,
            )
            earlier = episodes.earlier_needed and read.start > self._floor
            later = episodes.later_needed and read.end < self._ceiling
            if not (earlier or later):
                return episodes
            # Four times the range read so far on each side that needs it.
            widen = 4 * read.duration
            start = max(self._floor, read.start - widen) if earlier else read.start
            end = min(self._ceiling, read.end + widen) if later else read.end
            parts = [
                self._read(start, read.start) if earlier else None,
                values,
                self._read(read.end, end) if later else None,
            ]
            self.values = pd.concat([part for part in parts if part is not None and len(part)])
            self.read = DateTimeRange(start, end)

    def _read(self, start: datetime, end: datetime) -> pd.Series:
        started = time.perf_counter()
        values = self._perfdb.values.read(self._step.object_key, self._feature_id, start, end)
        self.read_seconds += time.perf_counter() - started
        return values


def _spans(episodes: Episodes) -> list[OccurrenceSpan]:
    """The episodes as spans to store, with UTC datetimes."""
    starts = pd.DatetimeIndex(episodes.start, tz="UTC").to_pydatetime()
    ends = pd.DatetimeIndex(episodes.end, tz="UTC").to_pydatetime()
    return [
        OccurrenceSpan(start, end, peak, is_open)
        for start, end, peak, is_open in zip(
            starts, ends, episodes.peak_value.tolist(), episodes.open.tolist(), strict=True
        )
    ]


def _look_back_note(
    episodes: Episodes, spans: Sequence[OccurrenceSpan], look_back: timedelta
) -> str | None:
    """What the step says about an episode longer than the look-back, or None."""
    reach = format_duration(look_back)
    notes = []
    if episodes.earlier_needed and spans:
        notes.append(
            f"an episode began more than {reach} (the look-back) before the period: counted "
            f"from {spans[0].start.isoformat()} or the stored occurrence it continues"
        )
    if episodes.later_needed and spans:
        notes.append(
            f"an episode goes on more than {reach} (the look-back) after the period: stored "
            f"as open to {spans[-1].end.isoformat()}"
        )
    return "; ".join(notes) or None
