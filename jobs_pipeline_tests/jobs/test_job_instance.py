"""`JobInstance`: the seed's constructor checks, properties and standalone `run()`.

The job type under test is `EchoJob`, a minimal subclass defined here: one step per object named
in its parameters, and a step fails the way `parameters["fail"]` says.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from jobs_pipeline.jobs import JobAlarmCalc, JobInstance, JobStepError, load_job, register
from jobs_pipeline.jobs import registry as job_registry
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InputError, InvalidTransition, NotFound
from jobs_pipeline.perfdb.records import Job, JobTypeSpec, Step
from jobs_pipeline.perfdb.states import JobState

OBJECTS = ("WT-01", "WT-02", "WT-03")


class EchoJob(JobInstance):
    """One step per name in `parameters["objects"]`; `parameters["fail"]` maps an object name to
    "step_error" (a `JobStepError`) or "crash" (any other exception)."""

    _name = "Echo (jobs tests)"
    _description = "test-only job type"
    _parameters_schema = {
        "type": "object",
        "properties": {
            "objects": {"type": "array", "items": {"type": "string"}},
            "fail": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["objects"],
    }

    ran: list[int]

    def _prepare(self) -> None:
        self.ran = []

    def failures(self) -> dict[str, str]:
        return self.parameters.get("fail", {})

    def _create_steps(self) -> list[dict[str, Any]]:
        ids = self.perfdb.catalog.object_ids(self.parameters["objects"])
        return [{"object_id": ids[name]} for name in self.parameters["objects"]]

    def _run_step(self, step_id: int) -> dict[str, Any] | None:
        self.ran.append(step_id)
        name = self.steps[step_id].object_name
        failure = self.failures().get(name)
        if failure == "step_error":
            raise JobStepError(f"feature 'pitch' of {name} has no data")
        if failure == "crash":
            raise RuntimeError(f"disk full while reading {name}")
        return {"object": name}


class HealedEchoJob(EchoJob):
    """The same job type once whatever made its steps fail has been fixed."""

    def failures(self) -> dict[str, str]:
        return {}


@pytest.fixture
def db(perfdb: PerfDB, monkeypatch: pytest.MonkeyPatch) -> PerfDB:
    """A database that knows `EchoJob` (registered for this test only) and the objects."""
    monkeypatch.setattr(job_registry, "_JOB_TYPES", dict(job_registry._JOB_TYPES))
    register(EchoJob)
    perfdb.queue.upsert_job_types(
        [
            JobTypeSpec(
                name=EchoJob._name,
                description=EchoJob._description,
                parameters_schema=EchoJob._parameters_schema,
            )
        ]
    )
    perfdb.catalog.ensure_objects(OBJECTS)
    return perfdb


def create_echo_job(
    db: PerfDB,
    objects: tuple[str, ...] = OBJECTS,
    *,
    fail: dict[str, str] | None = None,
    description: str = "nightly recalculation",
) -> int:
    parameters: dict[str, Any] = {"objects": list(objects)}
    if fail:
        parameters["fail"] = fail
    return db.queue.create_job(EchoJob._name, parameters, description=description).id


def assert_utc(*values: datetime | None) -> None:
    for value in values:
        assert value is not None
        assert value.utcoffset() == timedelta(0)


def transitions(db: PerfDB, job_id: int) -> list[tuple[int | None, JobState | None, JobState]]:
    return [(entry.step_id, entry.from_state, entry.to_state) for entry in db.queue.history(job_id)]


# --- constructor -----------------------------------------------------------------------------


def test_unknown_job_id_is_not_found(db: PerfDB) -> None:
    with pytest.raises(NotFound, match="job 424242 does not exist"):
        EchoJob(424242, perfdb=db)


def test_job_of_another_type_is_refused_and_left_alone(db: PerfDB) -> None:
    echo_id = create_echo_job(db)
    with pytest.raises(InputError, match="Echo \\(jobs tests\\)"):
        JobAlarmCalc(echo_id, perfdb=db)

    assert db.queue.get_job(echo_id).state == JobState.CREATED
    assert db.queue.get_steps(echo_id) == []

    alarm_parameters = {
        "object_names": ["WT-01"],
        "alarm_ids": [1],
        "start": "2024-03-01 00:00:00",
        "end": "2024-03-02 00:00:00",
    }
    alarm_job = db.queue.create_job("Alarm Calculation", alarm_parameters)
    with pytest.raises(InputError, match="Alarm Calculation"):
        EchoJob(alarm_job.id, perfdb=db)


def _to_running(db: PerfDB, job_id: int) -> None:
    db.queue.queue_job(job_id)
    db.queue.claim_job(job_id, "run-1")


def _to_finished(db: PerfDB, job_id: int) -> None:
    EchoJob(job_id, perfdb=db).run()


def _to_failed(db: PerfDB, job_id: int) -> None:
    db.queue.cancel_job(job_id, actor="tester")


@pytest.mark.parametrize(
    ("move", "state"),
    [
        (_to_running, JobState.RUNNING),
        (_to_finished, JobState.FINISHED),
        (_to_failed, JobState.FAILED),
    ],
    ids=["running", "finished", "failed"],
)
def test_job_that_has_started_cannot_be_run_standalone(
    db: PerfDB, move: Callable[[PerfDB, int], None], state: JobState
) -> None:
    job_id = create_echo_job(db)
    move(db, job_id)
    before = db.queue.get_job(job_id)
    assert before.state == state

    with pytest.raises(InvalidTransition, match=state.label):
        EchoJob(job_id, perfdb=db)

    assert db.queue.get_job(job_id) == before
    # The state check belongs to the standalone path: the Dagster ops bind to any state.
    assert isinstance(load_job(db, job_id), EchoJob)


def test_constructor_creates_the_steps_in_order_without_starting_the_job(db: PerfDB) -> None:
    job_id = create_echo_job(db, ("WT-03", "WT-01"), description="Monthly recalc")
    job = EchoJob(job_id, perfdb=db)

    steps = db.queue.get_steps(job_id)
    assert [step.object_name for step in steps] == ["WT-03", "WT-01"]
    assert job.job_step_ids == [step.id for step in steps]
    assert all(step.state == JobState.CREATED and step.attempts == 0 for step in steps)
    assert db.queue.get_job(job_id).state == JobState.CREATED
    assert job.job_id == job_id
    assert job.name == "Echo (jobs tests)"
    assert job.description == "Monthly recalc"
    assert job.parameters == {"objects": ["WT-03", "WT-01"]}


def test_delay_steps_creation_creates_the_steps_when_run(db: PerfDB) -> None:
    job_id = create_echo_job(db, ("WT-01", "WT-02"))
    job = EchoJob(job_id, perfdb=db, delay_steps_creation=True)
    assert db.queue.get_steps(job_id) == []

    assert job.run() == []

    steps = db.queue.get_steps(job_id)
    assert [step.object_name for step in steps] == ["WT-01", "WT-02"]
    assert job.job_step_ids == [step.id for step in steps]
    assert all(step.state == JobState.FINISHED for step in steps)
    # Created while the job was already Running, not before.
    assert transitions(db, job_id)[:4] == [
        (None, None, JobState.CREATED),
        (None, JobState.CREATED, JobState.RUNNING),
        (steps[0].id, None, JobState.CREATED),
        (steps[1].id, None, JobState.CREATED),
    ]


def test_delayed_step_creation_that_fails_fails_the_job(db: PerfDB) -> None:
    job_id = create_echo_job(db, ("WT-01", "WT-99"))
    job = EchoJob(job_id, perfdb=db, delay_steps_creation=True)

    with pytest.raises(NotFound, match="WT-99"):
        job.run()

    failed = db.queue.get_job(job_id)
    assert failed.state == JobState.FAILED
    assert failed.comment is not None
    assert "WT-99" in failed.comment
    assert db.queue.get_steps(job_id) == []


# --- run() -----------------------------------------------------------------------------------


def test_run_finishes_every_step_in_order(db: PerfDB) -> None:
    job_id = create_echo_job(db, ("WT-02", "WT-03", "WT-01"))
    job = EchoJob(job_id, perfdb=db)

    assert job.run() == []

    assert job.ran == job.job_step_ids
    finished = db.queue.get_job(job_id)
    steps = db.queue.get_steps(job_id)
    assert finished.state == JobState.FINISHED
    assert finished.comment is None
    assert job.job.state == JobState.FINISHED  # the instance sees the final row
    assert_job_and_step_timestamps(finished, steps)
    for step in steps:
        assert (step.state, step.comment, step.attempts) == (JobState.FINISHED, None, 1)


def assert_job_and_step_timestamps(job: Job, steps: list[Step]) -> None:
    assert_utc(job.created, job.started, job.finished, job.last_state_change)
    assert job.started is not None and job.finished is not None
    assert job.created <= job.started <= job.finished
    assert job.last_state_change == job.finished
    for step in steps:
        assert_utc(step.created, step.started, step.finished, step.last_state_change)
        assert step.started is not None and step.finished is not None
        assert job.started <= step.started <= step.finished <= job.finished
        assert step.last_state_change == step.finished
    for earlier, later in itertools.pairwise(steps):
        assert earlier.finished <= later.started  # type: ignore[operator]


def test_run_records_every_transition_in_the_history(db: PerfDB) -> None:
    job_id = create_echo_job(db, ("WT-01", "WT-02"), fail={"WT-02": "step_error"})
    EchoJob(job_id, perfdb=db).run()

    first, second = (step.id for step in db.queue.get_steps(job_id))
    history = db.queue.history(job_id)
    assert [(entry.step_id, entry.from_state, entry.to_state) for entry in history] == [
        (None, None, JobState.CREATED),
        (first, None, JobState.CREATED),
        (second, None, JobState.CREATED),
        (None, JobState.CREATED, JobState.RUNNING),
        (first, JobState.CREATED, JobState.RUNNING),
        (first, JobState.RUNNING, JobState.FINISHED),
        (second, JobState.CREATED, JobState.RUNNING),
        (second, JobState.RUNNING, JobState.FAILED),
        (None, JobState.RUNNING, JobState.FAILED),
    ]
    assert history[-2].comment == "feature 'pitch' of WT-02 has no data"
    assert history[-1].comment == "1 (50.00%) steps failed"
    assert all(entry.actor for entry in history)
    times = [entry.changed_at for entry in history]
    assert times == sorted(times)
    assert_utc(*times)


def test_failed_steps_are_reported_and_the_others_still_run(db: PerfDB) -> None:
    job_id = create_echo_job(db, fail={"WT-01": "step_error", "WT-03": "crash"})
    job = EchoJob(job_id, perfdb=db)
    first, second, third = job.job_step_ids

    assert job.run() == [first, third]

    assert job.ran == [first, second, third]
    steps = {step.id: step for step in db.queue.get_steps(job_id)}
    assert (steps[first].state, steps[first].comment) == (
        JobState.FAILED,
        "feature 'pitch' of WT-01 has no data",
    )
    assert (steps[second].state, steps[second].comment) == (JobState.FINISHED, None)
    assert (steps[third].state, steps[third].comment) == (
        JobState.FAILED,
        "Unknown error, please check the logs: disk full while reading WT-03",
    )
    failed = db.queue.get_job(job_id)
    assert failed.state == JobState.FAILED
    assert failed.comment == "2 (66.67%) steps failed"
    assert_job_and_step_timestamps(failed, list(steps.values()))


def test_queued_job_runs_standalone(db: PerfDB) -> None:
    job_id = create_echo_job(db, ("WT-01",))
    db.queue.queue_job(job_id)

    assert EchoJob(job_id, perfdb=db).run() == []

    job = db.queue.get_job(job_id)
    assert (job.state, job.queue_count) == (JobState.FINISHED, 1)


def test_requeued_failed_job_reruns_only_the_steps_not_finished(db: PerfDB) -> None:
    job_id = create_echo_job(db, fail={"WT-02": "crash"})
    first, second, third = EchoJob(job_id, perfdb=db).job_step_ids
    EchoJob(job_id, perfdb=db).run()
    before = {step.id: step for step in db.queue.get_steps(job_id)}

    db.queue.queue_job(job_id)
    healed = HealedEchoJob(job_id, perfdb=db)
    assert healed.run() == []

    assert healed.ran == [second]
    after = {step.id: step for step in db.queue.get_steps(job_id)}
    assert [after[step_id].attempts for step_id in (first, second, third)] == [1, 2, 1]
    assert after[first] == before[first]
    assert after[third] == before[third]
    assert (after[second].state, after[second].comment) == (JobState.FINISHED, None)
    job = db.queue.get_job(job_id)
    assert (job.state, job.comment) == (JobState.FINISHED, None)


def test_requeued_job_with_several_failed_steps_ends_finished_once_all_rerun(
    db: PerfDB,
) -> None:
    # The first re-run step finishing must not finalise the job while the second failed step
    # (still Failed from the earlier run) has yet to run.
    job_id = create_echo_job(db, fail={"WT-01": "crash", "WT-03": "step_error"})
    EchoJob(job_id, perfdb=db).run()
    assert db.queue.get_job(job_id).comment == "2 (66.67%) steps failed"

    db.queue.queue_job(job_id)
    assert HealedEchoJob(job_id, perfdb=db).run() == []

    job = db.queue.get_job(job_id)
    assert (job.state, job.comment) == (JobState.FINISHED, None)
    assert [step.state for step in db.queue.get_steps(job_id)] == [JobState.FINISHED] * 3
    finals = [
        entry.to_state
        for entry in db.queue.history(job_id)
        if entry.step_id is None and entry.from_state == JobState.RUNNING
    ]
    assert finals == [JobState.FAILED, JobState.FINISHED]


def test_requeued_finished_job_reruns_every_step(db: PerfDB) -> None:
    job_id = create_echo_job(db, ("WT-01", "WT-02"))
    EchoJob(job_id, perfdb=db).run()
    db.queue.queue_job(job_id)

    again = EchoJob(job_id, perfdb=db)
    assert again.run() == []

    assert again.ran == again.job_step_ids
    steps = db.queue.get_steps(job_id)
    assert [(step.state, step.attempts) for step in steps] == [(JobState.FINISHED, 2)] * 2
    assert db.queue.get_job(job_id).state == JobState.FINISHED


def test_test_jobs_are_skipped(db: PerfDB) -> None:
    job_id = create_echo_job(db, description="test of the new alarms")
    job = EchoJob(job_id, perfdb=db)

    assert job.run() == []

    assert db.queue.get_job(job_id).state == JobState.CREATED
    assert db.queue.get_steps(job_id) == []
    assert transitions(db, job_id) == [(None, None, JobState.CREATED)]


def test_test_jobs_run_when_skip_test_is_off(db: PerfDB) -> None:
    job_id = create_echo_job(db, fail={"WT-02": "step_error"}, description="test run")
    job = EchoJob(job_id, skip_test=False, perfdb=db)

    assert job.run() == [job.job_step_ids[1]]
    assert db.queue.get_job(job_id).comment == "1 (33.33%) steps failed"
