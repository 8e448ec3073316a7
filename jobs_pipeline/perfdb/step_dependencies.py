"""Steps that depend on other steps of the same job: a step starts only once the steps it
depends on Finished, and when one of them fails its dependents fail with it, without running,
in the same transaction (each comment names the step it waited for)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import DependencyNotFinished, NotFound
from jobs_pipeline.perfdb.queue_rows import (
    DEPENDENCIES,
    SELECT_STEPS,
    STEP,
    check_holder,
    dependencies_by_step,
    run_actor,
    step_from_row,
)
from jobs_pipeline.perfdb.records import NewStep, Step, StepResult
from jobs_pipeline.perfdb.states import Actor, JobState
from jobs_pipeline.perfdb.transitions import TransitionCore


def check_dependency_positions(steps: Sequence[NewStep]) -> None:
    """A step's `depends_on` names positions before its own, so position order runs
    dependencies first; anything else is a bug of the job type (`ValueError`)."""
    for position, step in enumerate(steps):
        if any(not 0 <= other < position for other in step.depends_on):
            raise ValueError(
                f"step at position {position} depends on {list(step.depends_on)}: "
                f"a step may depend only on steps before it"
            )


def insert_dependencies(
    connection: Connection, steps: Sequence[NewStep], step_ids: Sequence[int]
) -> None:
    """Writes the dependencies of `steps`, just inserted with ids `step_ids` (by position)."""
    rows = [
        {"step_id": step_ids[position], "depends_on_id": step_ids[other]}
        for position, step in enumerate(steps)
        for other in sorted(set(step.depends_on))
    ]
    if rows:
        connection.execute(DEPENDENCIES.insert(), rows)


def read_step(connection: Connection, step_id: int) -> Step | None:
    """One step with its dependencies, or None."""
    row = connection.execute(SELECT_STEPS.where(STEP.c.id == step_id)).first()
    if row is None:
        return None
    return step_from_row(row, dependencies_by_step(connection, STEP.c.id == step_id))


# The comment of a step that never started because its job was canceled first.
CANCELED_NOT_RUN = "canceled, not run"


def never_ran(comment: str | None) -> bool:
    """Whether a Failed step's comment says it never started (a canceled job, a failed
    dependency) rather than that it ran and failed."""
    return comment is not None and (comment == CANCELED_NOT_RUN or comment.startswith("not run"))


def not_run_comment(dependency: Step) -> str:
    """The comment of a step that did not run because `dependency` failed."""
    subject = (
        dependency.feature_name if dependency.alarm_id is None else f"alarm {dependency.alarm_id}"
    )
    what = " ".join(part for part in (dependency.object_name, subject) if part)
    return f"not run: depends on step {dependency.id} ({what}), which failed"


def read_started_step(connection: Connection, step_id: int) -> Step:
    """Reads back a step just moved to Running, with its dependencies, in one query, and
    raises `DependencyNotFinished` (the caller's transaction then writes nothing) when one of
    them has not Finished."""
    dependency = STEP.alias("dependency")
    rows = connection.execute(
        SELECT_STEPS.add_columns(
            dependency.c.id.label("dependency_id"),
            dependency.c.state_id.label("dependency_state_id"),
        )
        .outerjoin(DEPENDENCIES, DEPENDENCIES.c.step_id == STEP.c.id)
        .outerjoin(dependency, dependency.c.id == DEPENDENCIES.c.depends_on_id)
        .where(STEP.c.id == step_id)
        .order_by(dependency.c.position)
    ).all()
    if not rows:
        raise NotFound(f"step {step_id} does not exist")
    dependencies = [
        (row.dependency_id, JobState(row.dependency_state_id))
        for row in rows
        if row.dependency_id is not None
    ]
    unfinished = [(id_, state) for id_, state in dependencies if state != JobState.FINISHED]
    if unfinished:
        waiting = ", ".join(f"step {id_} is {state.label}" for id_, state in unfinished)
        raise DependencyNotFinished(
            f"step {step_id} depends on steps that have not Finished: {waiting}"
        )
    values = rows[0]._asdict()
    del values["dependency_id"], values["dependency_state_id"]
    values["state"] = JobState(values.pop("state_id"))
    values["depends_on"] = tuple(sorted(id_ for id_, _ in dependencies))
    return Step(**values)


class StepDependencies(TransitionCore):
    """The run's moves of steps whose dependencies failed (`Actor.RUN`)."""

    def dependencies_of(self, step_id: int) -> list[Step]:
        """The steps that `step_id` depends on, as they are now."""
        with begin(self.engine, write=False) as connection:
            rows = connection.execute(
                SELECT_STEPS.join(DEPENDENCIES, DEPENDENCIES.c.depends_on_id == STEP.c.id)
                .where(DEPENDENCIES.c.step_id == step_id)
                .order_by(STEP.c.position)
            ).all()
        return [step_from_row(row) for row in rows]

    def fail_not_run(
        self,
        step_id: int,
        dependency_id: int,
        *,
        run_id: str | None,
        actor: str | None = None,
    ) -> StepResult:
        """Fails a step that cannot run because `dependency_id` failed (its attempts stay as
        they are), with the steps that depend on it, for the run holding the job; the job's
        final state is written when nothing is left to run."""
        actor = actor or run_actor(run_id)
        with begin(self.engine) as connection:
            holder = self._lock_holder_of_step(connection, step_id)
            check_holder(holder, run_id)
            dependency = read_step(connection, dependency_id)
            if dependency is None:
                raise NotFound(f"step {dependency_id} does not exist")
            self._step_transition(
                connection,
                step_id,
                (JobState.CREATED, JobState.FAILED),
                JobState.FAILED,
                Actor.RUN,
                actor,
                values={"comment": not_run_comment(dependency), "run_id": run_id},
            )
            not_run = self._fail_dependents(connection, step_id, run_id, actor)
            job_state, job_comment = self._finalise_job(
                connection, holder.id, run_id, Actor.RUN, actor
            )
            return StepResult(
                step_id=step_id,
                job_id=holder.id,
                state=JobState.FAILED,
                job_state=job_state,
                job_comment=job_comment,
                not_run=tuple(not_run),
            )

    def _fail_dependents(
        self, connection: Connection, step_id: int, run_id: str | None, actor: str
    ) -> list[int]:
        """Fails, without running them, the steps that depend on the failed `step_id` directly
        or through others and that this run has not run yet (Created, or Failed under an
        earlier run); each comment names the step it depends on. Returns their ids. The
        triggers stamp `finished` and write the history rows."""
        failed: list[int] = []
        waiting = [step_id]
        while waiting:
            dependency_id = waiting.pop(0)
            dependency = step_from_row(
                connection.execute(SELECT_STEPS.where(STEP.c.id == dependency_id)).one()
            )
            comment = not_run_comment(dependency)
            dependents = connection.execute(
                sa.select(STEP.c.id)
                .join_from(DEPENDENCIES, STEP, DEPENDENCIES.c.step_id == STEP.c.id)
                .where(
                    DEPENDENCIES.c.depends_on_id == dependency_id,
                    sa.or_(
                        STEP.c.state_id == JobState.CREATED,
                        sa.and_(
                            STEP.c.state_id == JobState.FAILED,
                            STEP.c.run_id.is_distinct_from(run_id),
                        ),
                    ),
                )
                .order_by(STEP.c.position)
            ).scalars()
            for dependent_id in dependents.all():
                self._step_transition(
                    connection,
                    dependent_id,
                    (JobState.CREATED, JobState.FAILED),
                    JobState.FAILED,
                    Actor.RUN,
                    actor,
                    values={"comment": comment, "run_id": run_id},
                )
                failed.append(dependent_id)
                waiting.append(dependent_id)
        return failed
