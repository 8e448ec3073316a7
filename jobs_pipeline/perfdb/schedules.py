"""Schedules: periodic jobs from rows of `job_schedules`, one Queued job per ended period.

Each created period gets a row in `job_schedule_periods` whose primary key (schedule, period
start) is claimed before its job is inserted, in the same transaction: whoever comes second (a
second daemon, a repeated tick, a backfill over the same range) inserts nothing. The row stays
when its job is deleted, so a period is never created twice.

Times are the database's clock: the sensor reads it once per tick (`clock`) and compares it
with the stored due times, so processes with skewed clocks agree on what is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.calc.periods import Every, Periods, parse_local_time, parse_zone
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import InputError, InvalidParameters, NotFound
from jobs_pipeline.perfdb.models import (
    JobInstanceRow,
    JobSchedulePeriodRow,
    JobScheduleRow,
    JobType,
    table_of,
)
from jobs_pipeline.perfdb.queue_rows import (
    SELECT_JOBS,
    bounded,
    read_jobs_page,
    validate_against_schema,
)
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.perfdb.types import SQLITE_TIMESTAMP_FORMAT

SCHEDULES = table_of(JobScheduleRow)
PERIODS = table_of(JobSchedulePeriodRow)
JOB = table_of(JobInstanceRow)
TYPES = table_of(JobType)

PERIOD_KEYS = ("start", "end")
DEFAULT_CATCH_UP = 3
# A backfill is one transaction: past this many periods, ask for smaller ranges.
MAX_BACKFILL_PERIODS = 50_000


@dataclass(frozen=True, kw_only=True)
class Schedule:
    id: int
    name: str
    type_name: str
    parameters: dict[str, Any]
    every: str
    timezone: str
    delay: timedelta
    catch_up: int
    enabled: bool
    description: str
    comment: str | None
    first_start: datetime | None
    next_start: datetime | None
    next_due: datetime | None

    def periods(self, anchor: datetime | None = None) -> Periods:
        """The schedule's periods; `ValueError` for an `every` or time zone a frontend wrote
        wrong."""
        start = self.first_start or anchor or datetime(2000, 1, 1, tzinfo=UTC)
        return Periods(Every.parse(self.every), parse_zone(self.timezone), start)


@dataclass(frozen=True, kw_only=True)
class SchedulePeriod:
    """A period a schedule created a job for; `job_id` is None once that job was deleted."""

    schedule: str
    start: datetime
    end: datetime
    job_id: int | None


@dataclass(frozen=True, kw_only=True)
class TickOutcome:
    """What one scheduler pass did with one schedule."""

    schedule: str
    created: list[SchedulePeriod] = field(default_factory=list)
    # Ended periods past the catch-up limit, left to a backfill: how many, from when to when.
    skipped: int = 0
    skipped_from: datetime | None = None
    skipped_to: datetime | None = None
    disabled: str | None = None


@dataclass(frozen=True, kw_only=True)
class BackfillOutcome:
    created: list[SchedulePeriod]
    # Periods of the range that had been created before (their job may since be deleted).
    existing: int
    # Periods of the range that have not ended yet (plus the delay): left to the scheduler.
    not_ended: int


_SELECT_SCHEDULES = sa.select(
    SCHEDULES.c.id,
    SCHEDULES.c.name,
    TYPES.c.name.label("type_name"),
    SCHEDULES.c.parameters,
    SCHEDULES.c.every,
    SCHEDULES.c.timezone,
    SCHEDULES.c.delay_seconds,
    SCHEDULES.c.catch_up,
    SCHEDULES.c.enabled,
    SCHEDULES.c.description,
    SCHEDULES.c.comment,
    SCHEDULES.c.first_start,
    SCHEDULES.c.next_start,
    SCHEDULES.c.next_due,
).join_from(SCHEDULES, TYPES, SCHEDULES.c.type_id == TYPES.c.id)


def _schedule(row: Any) -> Schedule:
    values = row._asdict()
    values["delay"] = timedelta(seconds=values.pop("delay_seconds"))
    return Schedule(**values)


def utc_text(instant: datetime) -> str:
    """How a period bound is written into job parameters: ISO 8601 in UTC."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def period_parameters(parameters: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    return {**parameters, "start": utc_text(start), "end": utc_text(end)}


def insert_scheduled_job(
    connection: Connection,
    *,
    type_id: int,
    parameters: dict[str, Any],
    description: str,
    actor: str,
) -> int:
    """The one INSERT of a scheduled job, Queued at once; the database's rules fill in its
    timestamps and queue count and write its history row, naming `actor`."""
    job_id = connection.execute(
        JOB.insert()
        .values(
            type_id=type_id,
            state_id=JobState.QUEUED,
            parameters=parameters,
            description=description,
            actor=actor[:200],
        )
        .returning(JOB.c.id)
    ).scalar_one()
    return int(job_id)


def _insert_ignoring_duplicates(connection: Connection) -> Any:
    """An INSERT into the ledger that can skip the periods claimed already (both dialects
    spell `ON CONFLICT DO NOTHING` the same way, through different classes)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(PERIODS)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(PERIODS)


class Schedules:
    """Owns `job_schedules` and `job_schedule_periods` of one performance database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def clock(self) -> datetime:
        """The database's current time."""
        with begin(self.engine, write=False) as connection:
            return self._clock(connection)

    def _clock(self, connection: Connection) -> datetime:
        if connection.dialect.name == "sqlite":
            text = connection.exec_driver_sql(
                "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"
            ).scalar_one()
            return datetime.strptime(text, SQLITE_TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        value = connection.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
        return value.astimezone(UTC)

    # --- rows ------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        type_name: str,
        parameters: Any,
        every: str,
        *,
        timezone: str = "UTC",
        delay: timedelta = timedelta(0),
        start: datetime | str | None = None,
        catch_up: int = DEFAULT_CATCH_UP,
        description: str = "",
    ) -> Schedule:
        """A new enabled schedule. `start` (a local time in `timezone` unless it carries an
        offset; default: now) is moved back to the start of its period: the first job is for
        that period. Bad input raises `InputError` naming it; nothing is written then."""
        if not name.strip():
            raise InputError("a schedule needs a name")
        try:
            zone = parse_zone(timezone)
            every_ = Every.parse(every)
            start_at = parse_local_time(start, zone) if isinstance(start, str) else start
        except ValueError as error:
            raise InputError(str(error)) from None
        if delay < timedelta(0) or delay.microseconds:
            raise InputError(f"delay must be whole seconds >= 0, got {delay}")
        if catch_up < 0:
            raise InputError(f"catch-up must be >= 0, got {catch_up}")
        with begin(self.engine) as connection:
            type_id = self._check_parameters(connection, type_name, parameters)
            if connection.scalar(sa.select(SCHEDULES.c.id).where(SCHEDULES.c.name == name)):
                raise InputError(f"schedule {name!r} exists already")
            now = self._clock(connection)
            start_at = start_at or now
            periods = Periods(every_, zone, start_at)
            first = periods.align(start_at)
            connection.execute(
                SCHEDULES.insert().values(
                    name=name,
                    type_id=type_id,
                    parameters=parameters,
                    every=every,
                    timezone=timezone,
                    delay_seconds=int(delay.total_seconds()),
                    catch_up=catch_up,
                    enabled=True,
                    description=description,
                    first_start=first,
                    next_start=first,
                    next_due=Periods(every_, zone, first).following(first) + delay,
                )
            )
            return self._get(connection, name)

    def _check_parameters(self, connection: Connection, type_name: str, parameters: Any) -> int:
        """The type's id; `InvalidParameters` unless the parameters plus a period fit its
        schema."""
        row = connection.execute(
            sa.select(TYPES.c.id, TYPES.c.parameters_schema).where(TYPES.c.name == type_name)
        ).first()
        if row is None:
            known = ", ".join(repr(n) for n in connection.scalars(sa.select(TYPES.c.name)))
            raise NotFound(f"unknown job type {type_name!r} (known: {known or 'none'})")
        if not isinstance(parameters, dict):
            raise InvalidParameters("schedule parameters must be a JSON object")
        given = sorted(set(PERIOD_KEYS) & set(parameters))
        if given:
            raise InvalidParameters(
                f"schedule parameters must not contain {', '.join(given)}: each period sets them"
            )
        sample = datetime(2000, 1, 1, tzinfo=UTC)
        validate_against_schema(
            type_name,
            row.parameters_schema,
            period_parameters(parameters, sample, sample + timedelta(days=1)),
        )
        return int(row.id)

    def get(self, name: str) -> Schedule:
        with begin(self.engine, write=False) as connection:
            return self._get(connection, name)

    def _get(self, connection: Connection, name: str, *, lock: bool = False) -> Schedule:
        query = _SELECT_SCHEDULES.where(SCHEDULES.c.name == name)
        row = connection.execute(query.with_for_update(of=SCHEDULES) if lock else query).first()
        if row is None:
            raise NotFound(f"schedule {name!r} does not exist")
        return _schedule(row)

    def all(self) -> list[Schedule]:
        with begin(self.engine, write=False) as connection:
            query = _SELECT_SCHEDULES.order_by(SCHEDULES.c.name)
            return [_schedule(row) for row in connection.execute(query)]

    def set_enabled(self, name: str, enabled: bool, comment: str | None = None) -> Schedule:
        """Pause (with a comment saying why) or resume. A resumed schedule treats the periods
        that ended meanwhile like a downtime: up to its catch-up limit."""
        with begin(self.engine) as connection:
            changed = connection.execute(
                SCHEDULES.update()
                .where(SCHEDULES.c.name == name)
                .values(enabled=enabled, comment=None if enabled else bounded(comment))
            ).rowcount
            if not changed:
                raise NotFound(f"schedule {name!r} does not exist")
            return self._get(connection, name)

    def delete(self, name: str) -> None:
        """Deletes the schedule and its record of periods; the jobs it created stay."""
        with begin(self.engine) as connection:
            if not connection.execute(SCHEDULES.delete().where(SCHEDULES.c.name == name)).rowcount:
                raise NotFound(f"schedule {name!r} does not exist")

    # --- periods and their jobs -------------------------------------------------------------

    def periods(self, name: str) -> list[SchedulePeriod]:
        """The periods created so far, oldest first."""
        query = (
            sa.select(PERIODS.c.period_start, PERIODS.c.period_end, PERIODS.c.job_id)
            .join_from(PERIODS, SCHEDULES, PERIODS.c.schedule_id == SCHEDULES.c.id)
            .where(SCHEDULES.c.name == name)
            .order_by(PERIODS.c.period_start)
        )
        with begin(self.engine, write=False) as connection:
            self._get(connection, name)
            return [
                SchedulePeriod(
                    schedule=name, start=row.period_start, end=row.period_end, job_id=row.job_id
                )
                for row in connection.execute(query)
            ]

    def periods_of_jobs(self, job_ids: list[int]) -> dict[int, SchedulePeriod]:
        """The schedule and period of each of these jobs that a schedule created."""
        if not job_ids:
            return {}
        query = (
            sa.select(
                PERIODS.c.job_id, SCHEDULES.c.name, PERIODS.c.period_start, PERIODS.c.period_end
            )
            .join_from(PERIODS, SCHEDULES, PERIODS.c.schedule_id == SCHEDULES.c.id)
            .where(PERIODS.c.job_id.in_(job_ids))
        )
        with begin(self.engine, write=False) as connection:
            return {
                row.job_id: SchedulePeriod(
                    schedule=row.name,
                    start=row.period_start,
                    end=row.period_end,
                    job_id=row.job_id,
                )
                for row in connection.execute(query)
            }

    def list_jobs(
        self,
        name: str,
        *,
        state: JobState | None = None,
        after_id: int = 0,
        limit: int | None = None,
        last: int | None = None,
    ) -> list[Job]:
        """The jobs a schedule created that still exist, in id order (after `after_id`; the
        first `limit`, or the newest `last`)."""
        query = (
            SELECT_JOBS.join(PERIODS, PERIODS.c.job_id == JOB.c.id)
            .join(SCHEDULES, SCHEDULES.c.id == PERIODS.c.schedule_id)
            .where(SCHEDULES.c.name == name)
        )
        if state is not None:
            query = query.where(JOB.c.state_id == state)
        with begin(self.engine, write=False) as connection:
            self._get(connection, name)
            return read_jobs_page(connection, query, after_id=after_id, limit=limit, last=last)

    def _create_periods(
        self,
        connection: Connection,
        schedule: Schedule,
        type_id: int,
        bounds: list[tuple[datetime, datetime]],
        actor: str,
        now: datetime,
    ) -> list[SchedulePeriod]:
        """Claims each period in the ledger and creates the job of each one claimed here; the
        periods someone else created already are left alone."""
        if not bounds:
            return []
        claimed = connection.execute(
            _insert_ignoring_duplicates(connection)
            .values(
                [
                    {
                        "schedule_id": schedule.id,
                        "period_start": start,
                        "period_end": end,
                        "created": now,
                    }
                    for start, end in bounds
                ]
            )
            .on_conflict_do_nothing(index_elements=["schedule_id", "period_start"])
            .returning(PERIODS.c.period_start, PERIODS.c.period_end)
        ).all()
        description = schedule.description or f"schedule {schedule.name}"
        created = []
        for start, end in sorted(claimed):
            job_id = insert_scheduled_job(
                connection,
                type_id=type_id,
                parameters=period_parameters(schedule.parameters, start, end),
                description=description,
                actor=actor,
            )
            connection.execute(
                PERIODS.update()
                .where(PERIODS.c.schedule_id == schedule.id, PERIODS.c.period_start == start)
                .values(job_id=job_id)
            )
            created.append(
                SchedulePeriod(schedule=schedule.name, start=start, end=end, job_id=job_id)
            )
        return created

    def due(self, now: datetime, *, limit: int) -> list[int]:
        """Ids of the enabled schedules whose next period is due at `now`, or not yet planned
        (inserted by a frontend), most overdue first."""
        query = (
            sa.select(SCHEDULES.c.id)
            .where(
                SCHEDULES.c.enabled.is_(True),
                sa.or_(SCHEDULES.c.next_due <= now, SCHEDULES.c.next_due.is_(None)),
            )
            .order_by(SCHEDULES.c.next_due)
            .limit(limit)
        )
        with begin(self.engine, write=False) as connection:
            return list(connection.scalars(query))

    def run_due(self, schedule_id: int, now: datetime, *, actor: str) -> TickOutcome | None:
        """Creates the jobs of this schedule's periods that ended by `now` (+ delay): the newest
        one and up to `catch_up` before it; older ones are skipped (a backfill creates them).
        A schedule whose row cannot make valid jobs is disabled with a comment saying why.
        None when the schedule is gone or disabled."""
        with begin(self.engine) as connection:
            row = connection.execute(
                _SELECT_SCHEDULES.where(SCHEDULES.c.id == schedule_id).with_for_update(of=SCHEDULES)
            ).first()
            if row is None or not row.enabled:
                return None
            schedule = _schedule(row)
            try:
                periods = schedule.periods(anchor=now)
                first = schedule.first_start or periods.align(now)
                periods = Periods(periods.every, periods.zone, first)
                type_id = self._check_parameters(
                    connection, schedule.type_name, schedule.parameters
                )
            except (ValueError, InputError) as error:
                reason = bounded(f"disabled: {error}")
                connection.execute(
                    SCHEDULES.update()
                    .where(SCHEDULES.c.id == schedule_id)
                    .values(enabled=False, comment=reason)
                )
                return TickOutcome(schedule=schedule.name, disabled=reason)
            next_start = schedule.next_start or periods.floor(first)
            # Periods starting before the one that holds `now - delay` have ended by then.
            limit = max(next_start, periods.floor(now - schedule.delay))
            count = periods.count(next_start, limit)
            kept = periods.newest_starts(next_start, limit, schedule.catch_up + 1)
            bounds = [(start, periods.following(start)) for start in kept]
            created = self._create_periods(connection, schedule, type_id, bounds, actor, now)
            connection.execute(
                SCHEDULES.update()
                .where(SCHEDULES.c.id == schedule_id)
                .values(
                    first_start=first,
                    next_start=limit,
                    next_due=periods.following(limit) + schedule.delay,
                )
            )
            skipped = count - len(kept)
            return TickOutcome(
                schedule=schedule.name,
                created=created,
                skipped=skipped,
                skipped_from=next_start if skipped else None,
                skipped_to=kept[0] if skipped else None,
            )

    def backfill(
        self, name: str, low: datetime | str, high: datetime | str, *, actor: str
    ) -> BackfillOutcome:
        """Creates the jobs of the periods that start in `[low, high)` and have ended (+ delay),
        each once however often this runs; times as text are local in the schedule's zone
        unless they carry an offset. Periods created before (whose job may since have been
        deleted) are not created again."""
        with begin(self.engine) as connection:
            # Writers of one schedule's periods take turns, as the scheduler's passes do: a
            # backfill that claimed a period while a pass waits on it would deadlock otherwise.
            schedule = self._get(connection, name, lock=True)
            try:
                periods = schedule.periods()
                low_at = parse_local_time(low, periods.zone) if isinstance(low, str) else low
                high_at = parse_local_time(high, periods.zone) if isinstance(high, str) else high
            except ValueError as error:
                raise InputError(str(error)) from None
            if high_at <= low_at:
                raise InputError(f"--to ({high}) must be after --from ({low})")
            count = periods.count(low_at, high_at)
            if count > MAX_BACKFILL_PERIODS:
                raise InputError(
                    f"{count} periods from {low} to {high}: at most {MAX_BACKFILL_PERIODS} at once"
                )
            type_id = self._check_parameters(connection, schedule.type_name, schedule.parameters)
            now = self._clock(connection)
            ended_before = periods.floor(now - schedule.delay)
            starts = periods.starts(low_at, high_at)
            bounds = [(s, periods.following(s)) for s in starts if s < ended_before]
            created = self._create_periods(connection, schedule, type_id, bounds, actor, now)
            return BackfillOutcome(
                created=created,
                existing=len(bounds) - len(created),
                not_ended=len(starts) - len(bounds),
            )
