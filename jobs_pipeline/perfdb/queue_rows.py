"""The job queue's tables, the shapes it reads rows into, and the small rules every part of it
shares (comments, outcomes, the holder fence, parameter validation)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, overload

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jobs_pipeline.perfdb.errors import InvalidParameters, LostOwnership
from jobs_pipeline.perfdb.models import (
    FeatureRow,
    JobInstanceRow,
    JobStateHistoryRow,
    JobStepDependencyRow,
    JobStepRow,
    JobType,
    ObjectRow,
    table_of,
)
from jobs_pipeline.perfdb.records import Job, Step
from jobs_pipeline.perfdb.states import Actor, JobState

JOB = table_of(JobInstanceRow)
STEP = table_of(JobStepRow)
HISTORY = table_of(JobStateHistoryRow)
TYPES = table_of(JobType)
OBJECTS = table_of(ObjectRow)
FEATURES = table_of(FeatureRow)
DEPENDENCIES = table_of(JobStepDependencyRow)

DEFAULT_ACTOR = "api"


def utcnow() -> datetime:
    return datetime.now(UTC)


def failed_steps_comment(failed: int, total: int) -> str:
    """The seed's wording for a job with failed steps."""
    return f"{failed} ({failed / total:.2%}) steps failed"


def job_outcome(counts: Mapping[JobState, int]) -> tuple[JobState, str | None]:
    """A job's final state and comment from its steps' states: Finished when every step
    finished; else Failed, telling steps that failed from steps that never ran
    (`1 (1.79%) steps failed, 55 not run`)."""
    total = sum(counts.values())
    if not total:
        return JobState.FAILED, "no steps were created"
    failed = counts.get(JobState.FAILED, 0) + counts.get(JobState.RUNNING, 0)
    not_run = counts.get(JobState.CREATED, 0)
    if not failed and not not_run:
        return JobState.FINISHED, None
    if not failed:
        return JobState.FAILED, f"{not_run} of {total} steps not run"
    comment = failed_steps_comment(failed, total)
    return JobState.FAILED, f"{comment}, {not_run} not run" if not_run else comment


MAX_COMMENT_CHARS = 2000


@overload
def bounded(comment: str, limit: int = ...) -> str: ...
@overload
def bounded(comment: None, limit: int = ...) -> None: ...
@overload
def bounded(comment: str | None, limit: int = ...) -> str | None: ...
def bounded(comment: str | None, limit: int = MAX_COMMENT_CHARS) -> str | None:
    """Comments are for people: a few kB at most, however long the reason."""
    if comment is None or len(comment) <= limit:
        return comment
    cut = len(comment) - limit
    return f"{comment[:limit]}... ({cut} more characters)"


# A cancel request is done with once the job is final or queued again.
NO_CANCEL_REQUEST = {"cancel_requested": None, "cancel_requested_by": None}

# `_step_transition`'s default: the caller does not restrict which run a Running step is in.
ANY_RUN: Final = object()


def state_labels(states: Iterable[JobState]) -> str:
    return ", ".join(state.label for state in states)


JOB_COLUMNS = (
    JOB.c.id,
    TYPES.c.name.label("type_name"),
    JOB.c.state_id,
    JOB.c.parameters,
    JOB.c.description,
    JOB.c.comment,
    JOB.c.created,
    JOB.c.started,
    JOB.c.finished,
    JOB.c.last_state_change,
    JOB.c.queue_count,
    JOB.c.run_id,
    JOB.c.heartbeat,
    JOB.c.cancel_requested,
    JOB.c.cancel_requested_by,
)
SELECT_JOBS = sa.select(*JOB_COLUMNS).join_from(JOB, TYPES, JOB.c.type_id == TYPES.c.id)

SELECT_STEPS = sa.select(
    STEP.c.id,
    STEP.c.job_id,
    STEP.c.position,
    STEP.c.object_id,
    OBJECTS.c.name.label("object_name"),
    STEP.c.alarm_id,
    STEP.c.feature_id,
    STEP.c.state_id,
    STEP.c.comment,
    STEP.c.created,
    STEP.c.started,
    STEP.c.finished,
    STEP.c.last_state_change,
    STEP.c.attempts,
    STEP.c.run_id,
    STEP.c.details,
    FEATURES.c.name.label("feature_name"),
).select_from(
    # Outer joins: a Data Import step is about no object, an Alarm Calculation step no feature.
    STEP.outerjoin(OBJECTS, STEP.c.object_id == OBJECTS.c.id).outerjoin(
        FEATURES, STEP.c.feature_id == FEATURES.c.id
    )
)


def job_from_row(row: Any) -> Job:
    values = row._asdict()
    values["state"] = JobState(values.pop("state_id"))
    return Job(**values)


def read_jobs_page(
    connection: Any,
    query: sa.Select[Any],
    *,
    after_id: int = 0,
    limit: int | None = None,
    last: int | None = None,
) -> list[Job]:
    """The jobs of `query` (a `SELECT_JOBS` with its filters) in id order: those after
    `after_id`, the first `limit` of them, or the newest `last` (read newest first, so that a
    year of kept jobs costs no more than a page)."""
    query = query.where(JOB.c.id > after_id)
    if last is not None:
        rows = connection.execute(query.order_by(JOB.c.id.desc()).limit(last)).all()
        return [job_from_row(row) for row in reversed(rows)]
    return [job_from_row(row) for row in connection.execute(query.order_by(JOB.c.id).limit(limit))]


def step_from_row(row: Any, depends_on: Mapping[int, tuple[int, ...]] | None = None) -> Step:
    """A step read by `SELECT_STEPS`; `depends_on` maps step ids to their dependencies
    (`step_dependencies.dependencies_by_step`)."""
    values = row._asdict()
    values["state"] = JobState(values.pop("state_id"))
    values["depends_on"] = (depends_on or {}).get(values["id"], ())
    return Step(**values)


def dependencies_by_step(connection: Connection, where: Any) -> dict[int, tuple[int, ...]]:
    """The dependencies of the steps `where` selects (a condition on `job_steps`), by step."""
    found: dict[int, list[int]] = {}
    for step_id, depends_on_id in connection.execute(
        sa.select(DEPENDENCIES.c.step_id, DEPENDENCIES.c.depends_on_id)
        .join_from(DEPENDENCIES, STEP, DEPENDENCIES.c.step_id == STEP.c.id)
        .where(where)
        .order_by(DEPENDENCIES.c.step_id, DEPENDENCIES.c.depends_on_id)
    ):
        found.setdefault(step_id, []).append(depends_on_id)
    return {step_id: tuple(ids) for step_id, ids in found.items()}


HOLDER_COLUMNS = (
    JOB.c.id,
    JOB.c.state_id,
    JOB.c.run_id,
    JOB.c.cancel_requested,
    JOB.c.cancel_requested_by,
)


def check_holder(holder: Any, run_id: str | None) -> None:
    """The fence of every write a run makes: the job (a `_lock_holder` row) must be Running and
    held by `run_id`; `LostOwnership` names both runs otherwise."""
    if holder.state_id != JobState.RUNNING or holder.run_id != run_id:
        held = f"held by run {holder.run_id}" if holder.run_id else "held by no run"
        state = JobState(holder.state_id).label
        raise LostOwnership(
            f"job {holder.id} is {state} and {held}: run {run_id} no longer holds it"
        )


def run_actor(run_id: str | None) -> str:
    return f"run:{run_id}" if run_id else "run:standalone"


def validate_against_schema(type_name: str, schema: dict[str, Any], parameters: Any) -> None:
    """Raises `InvalidParameters` naming the offending field."""
    import jsonschema  # here: commands that only read the queue need not load it

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(parameters))
    if error is None:
        return
    where = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    ).lstrip(".")
    location = f"parameter '{where}': " if where else ""
    # jsonschema quotes the offending value, which may be megabytes of a frontend's JSON.
    message = bounded(error.message, 300)
    raise InvalidParameters(f"invalid parameters for {type_name!r}: {location}{message}")


def actor_label(who: Actor, name: str) -> str:
    """What a statement writes to `actor`: `<kind>:<name>`, the kind being who acts (the
    triggers check the move against it)."""
    prefix = f"{who.value}:"
    return (name if name.startswith(prefix) else prefix + name)[:200]
