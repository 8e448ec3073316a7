"""Plain records returned by the performance database API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jobs_pipeline.perfdb.states import JobState


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
    object_id: int
    object_name: str
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


@dataclass(frozen=True, kw_only=True)
class NewStep:
    """A step to create; the position is its index in the list given to `create_steps`."""

    object_id: int
    alarm_id: int | None = None
    feature_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """The outcome of `finish_step`: the step's state and, if it was the last, the job's."""

    step_id: int
    job_id: int
    state: JobState
    job_state: JobState | None = None
    job_comment: str | None = None


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
