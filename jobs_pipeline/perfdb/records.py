"""Plain records returned by the performance database API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobs_pipeline.calc.alarm_timeline import AlarmTimeline
from jobs_pipeline.perfdb.states import JobState

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd


@dataclass(frozen=True, kw_only=True)
class JobTypeSpec:
    """What a registered job type contributes to `job_types`."""

    name: str
    description: str
    parameters_schema: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Job:
    id: int
    type_name: str
    state: JobState
    parameters: dict[str, Any]
    description: str
    comment: str | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    last_state_change: datetime
    queue_count: int
    run_id: str | None
    heartbeat: datetime | None = None
    cancel_requested: datetime | None = None
    cancel_requested_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class Step:
    id: int
    job_id: int
    position: int
    object_id: int | None
    object_name: str | None
    alarm_id: int | None
    feature_id: int | None
    state: JobState
    comment: str | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    last_state_change: datetime
    attempts: int
    run_id: str | None
    details: dict[str, Any] | None = None
    feature_name: str | None = None
    # Ids of the steps of the same job that must Finish before this one starts.
    depends_on: tuple[int, ...] = ()

    @property
    def object_key(self) -> int:
        """The step's object id, for job types whose every step is about an object."""
        if self.object_id is None:
            raise ValueError(f"step {self.id} is about no object")
        return self.object_id


@dataclass(frozen=True, kw_only=True)
class NewStep:
    """A step to create; the position is its index in the list given to `create_steps`, and
    `depends_on` names earlier positions of that list."""

    object_id: int | None = None
    alarm_id: int | None = None
    feature_id: int | None = None
    depends_on: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """The outcome of `finish_step`: the step's state and, if it was the last, the job's."""

    step_id: int
    job_id: int
    state: JobState
    job_state: JobState | None = None
    job_comment: str | None = None
    # Steps that depend on a step that failed, Failed with it without running.
    not_run: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    job_id: int
    step_id: int | None
    from_state: JobState | None
    to_state: JobState
    actor: str
    comment: str | None
    changed_at: datetime


@dataclass(frozen=True, kw_only=True)
class Feature:
    id: int
    name: str
    unit: str
    sampling_period: timedelta


@dataclass(frozen=True, kw_only=True)
class DerivedFeature:
    """A feature computed by `expression` from `inputs` (in the order the expression names
    them)."""

    feature: Feature
    expression: str
    inputs: tuple[Feature, ...]


@dataclass(frozen=True, kw_only=True)
class FeatureOverview:
    """A feature and what is stored of it."""

    feature: Feature
    objects: int
    samples: int
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True, kw_only=True)
class AlarmDefinition:
    id: int
    name: str
    feature: Feature
    operator: str
    threshold: float
    clear_threshold: float | None
    min_duration: timedelta

    def timeline(
        self,
        *,
        object_name: str,
        start: datetime,
        end: datetime,
        values: pd.Series,
        occurrences: Sequence[tuple[datetime, datetime]],
    ) -> AlarmTimeline:
        """What a picture of this alarm on one object shows: its rule and feature from here."""
        return AlarmTimeline(
            object_name=object_name,
            alarm_id=self.id,
            alarm_name=self.name,
            feature=self.feature.name,
            unit=self.feature.unit,
            operator=self.operator,
            threshold=self.threshold,
            clear_threshold=self.clear_threshold,
            sampling_period=self.feature.sampling_period,
            start=start,
            end=end,
            values=values,
            occurrences=occurrences,
        )


@dataclass(frozen=True, kw_only=True)
class AlarmOccurrence:
    object_name: str
    alarm_id: int
    start: datetime
    end: datetime
    peak_value: float | None
    step_id: int | None = None
    # Still active at the last sample there was (see `AlarmOccurrenceRow.is_open`).
    open: bool = False


@dataclass(frozen=True, kw_only=True)
class ImportSummary:
    rows: int
    # Of `rows`: stored for the first time, and stored before with another value.
    new_values: int = 0
    changed_values: int = 0
    objects_created: list[str] = field(default_factory=list)
    features_created: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class JobAges:
    """How long ago, by the database's clock, a job last showed life and last changed state, in
    seconds; and the database's time when it was asked (seconds since the epoch)."""

    job_id: int
    silent_seconds: float  # since its heartbeat, else since it started or changed state
    state_seconds: float  # since its last state change
    database_time: float
