"""`perfdb_job` executed in this process against a real performance database (SQLite and
PostgreSQL): what the ops write to the database, what the run page shows, and the ways a job runs
again (re-execution from failure, re-execution of all steps, requeue)."""

from __future__ import annotations

import base64
from typing import Any

import dagster as dg
import pytest

from jobs_pipeline.definitions import defs
from jobs_pipeline.orchestration.mapping_keys import mapping_key
from jobs_pipeline.orchestration.ops import PLAN_OP_NAME
from jobs_pipeline.orchestration.sensors import JOB_ID_TAG, run_tags
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import PERFDB_URL
from jobs_pipeline_tests.orchestration.alarm_fleet import (
    EXPECTED_OCCURRENCES,
    FEATURE,
    HIGH,
    NO_DATA,
    VERY_HIGH,
    WITH_DATA,
    alarm_job,
    import_missing_values,
    occurrence_counts,
)
from jobs_pipeline_tests.orchestration.op_keys import SUMMARY_OP, op_key, started_step_keys
from jobs_pipeline_tests.orchestration.perfdb_job_config import perfdb_job_resources, plan_config

pytestmark = [
    # Closes the process-wide engine on each test's database before the database is dropped.
    pytest.mark.usefixtures("perfdb_resource"),
]

CREATED, QUEUED, RUNNING, FINISHED, FAILED = (
    JobState.CREATED,
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.FINISHED,
    JobState.FAILED,
)
NO_DATA_COMMENT = (
    f"no data for feature '{FEATURE}' of object '{NO_DATA}' in "
    "[2024-03-01T00:00:00+00:00, 2024-03-01T02:00:00+00:00)"
)


def code_location_job() -> dg.JobDefinition:
    """`perfdb_job` as the code location defines it (its resource reads `PERFDB_URL`); module
    level so that `dg.reconstructable` can find it again, as a re-execution must."""
    return defs.get_job_def("perfdb_job")


def execute(job_id: int, url: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return code_location_job().execute_in_process(
        run_config=plan_config(job_id),
        instance=instance,
        resources=perfdb_job_resources(url),
        raise_on_error=False,
    )


def execute_job(
    job_id: int,
    instance: dg.DagsterInstance,
    reexecution_options: dg.ReexecutionOptions | None = None,
    tags: dict[str, str] | None = None,
) -> dg.JobExecutionResult:
    """A run reconstructed from the code location, as every re-execution must be."""
    return dg.execute_job(
        dg.reconstructable(code_location_job),
        instance=instance,
        run_config=plan_config(job_id),
        tags=tags,
        reexecution_options=reexecution_options,
    )


def assert_inline_png(markdown: str) -> None:
    """Markdown holding one inline PNG that decodes, of a size fit for a run page."""
    prefix = "](data:image/png;base64,"
    assert markdown.startswith("![") and prefix in markdown and markdown.endswith(")")
    png = base64.b64decode(markdown.split(prefix, 1)[1][:-1], validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert 1_000 < len(png) < 100_000


def output_metadata(result: Any, step_key: str) -> dict[str, Any]:
    [metadata] = [
        event.step_output_data.metadata
        for event in result.all_events
        if event.event_type_value == "STEP_OUTPUT" and event.step_key == step_key
    ]
    return {name: value.value for name, value in metadata.items()}


def step_history(perfdb: PerfDB, step_id: int) -> list[tuple[Any, ...]]:
    return [
        (entry.from_state, entry.to_state, entry.actor)
        for entry in perfdb.queue.history(perfdb.queue.get_step(step_id).job_id)
        if entry.step_id == step_id
    ]


def job_transitions(perfdb: PerfDB, job_id: int) -> list[tuple[Any, Any]]:
    return [
        (entry.from_state, entry.to_state)
        for entry in perfdb.queue.history(job_id)
        if entry.step_id is None
    ]


def occurrences(perfdb: PerfDB) -> list[tuple[Any, ...]]:
    return [
        (o.object_name, o.alarm_id, o.start, o.end, o.peak_value, o.step_id)
        for o in perfdb.occurrences.list()
    ]


def outcome(perfdb: PerfDB, job_id: int) -> tuple[Any, ...]:
    """What a user reads after a run: job and step states and comments, and the occurrences."""
    job = perfdb.queue.get_job(job_id)
    steps = [(step.id, step.state, step.comment) for step in perfdb.queue.get_steps(job_id)]
    return job.state, job.comment, steps, occurrences(perfdb)


# --- one run -----------------------------------------------------------------------------------


def test_a_step_without_data_fails_its_op_and_the_job(
    seeded_db: PerfDB, perfdb_url: str, dagster_instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db)

    result = execute(job.id, perfdb_url, dagster_instance)

    assert not result.success
    steps = seeded_db.queue.get_steps(job.id)
    failed = [step for step in steps if step.object_name == NO_DATA]
    finished = [step for step in steps if step.object_name != NO_DATA]
    assert [(s.state, s.comment) for s in failed] == [(FAILED, NO_DATA_COMMENT)] * 2
    assert [(s.state, s.comment) for s in finished] == [(FINISHED, None)] * 4
    assert {step.run_id for step in steps} == {result.run_id}
    stored = seeded_db.queue.get_job(job.id)
    assert (stored.state, stored.comment, stored.run_id) == (
        FAILED,
        "2 (33.33%) steps failed",
        result.run_id,
    )

    # One readable, Dagster-safe mapping key per step: step id, object, alarm.
    plan_keys = [
        event.step_output_data.mapping_key
        for event in result.all_events
        if event.event_type_value == "STEP_OUTPUT" and event.step_key == PLAN_OP_NAME
    ]
    assert plan_keys == [mapping_key(step) for step in steps]
    assert plan_keys[0] == f"s{steps[0].id}_LAN_01_{HIGH}"
    assert plan_keys[-1] == f"s{steps[-1].id}_LAN_03_{VERY_HIGH}"
    assert started_step_keys(result) == sorted([PLAN_OP_NAME, *map(op_key, steps)])

    # The failed ops are red, with the step's comment and where it failed.
    failures = {event.step_key or "": event for event in result.get_step_failure_events()}
    assert sorted(failures) == sorted(map(op_key, failed))
    job_states: list[Any] = []  # the op of the step that ended last also reports the job's state
    for step in failed:
        user_failure = failures[op_key(step)].step_failure_data.user_failure_data
        assert user_failure is not None
        assert user_failure.description == NO_DATA_COMMENT
        reported = {name: value.value for name, value in user_failure.metadata.items()}
        assert (reported["step_id"], reported["object"], reported["alarm_id"]) == (
            step.id,
            NO_DATA,
            step.alarm_id,
        )
        job_states += [reported["job_state"]] if "job_state" in reported else []
        if "job_state" in reported:
            # The run's summary op is skipped: the op that finalised the job tells its outcome.
            assert (reported["steps_failed"], reported["steps_finished"]) == (2, 4)
            assert reported["steps_this_run"] == 6
            assert reported["job_comment"] == "2 (33.33%) steps failed"
            assert reported["job_description"] == "nightly alarms"
            assert reported["steps_not_finished"].count(NO_DATA_COMMENT) == 2
            assert f"| {HIGH} Temperature high |" in reported["occurrences"]
            assert_inline_png(reported["fleet"])

    # The ops that succeeded say what they computed.
    for step in finished:
        metadata = output_metadata(result, op_key(step))
        assert (metadata["step_id"], metadata["object"], metadata["alarm_id"]) == (
            step.id,
            step.object_name,
            step.alarm_id,
        )
        assert metadata["samples_read"] == 12
        expected = EXPECTED_OCCURRENCES[step.object_name, step.alarm_id]
        assert metadata["occurrences_written"] == expected
        assert metadata["seconds"] >= 0
        job_states += [metadata["job_state"]] if "job_state" in metadata else []
    assert job_states == ["Failed"]
    # The summary needs every step; Dagster skips it when one failed.
    assert SUMMARY_OP not in started_step_keys(result)


def test_a_successful_run_ends_with_a_summary(
    seeded_db: PerfDB, perfdb_url: str, dagster_instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db, WITH_DATA)

    result = execute(job.id, perfdb_url, dagster_instance)

    assert result.success
    assert result.output_for_node(SUMMARY_OP) is True
    stored = seeded_db.queue.get_job(job.id)
    assert (stored.state, stored.comment) == (FINISHED, None)
    summary = output_metadata(result, SUMMARY_OP)
    assert_inline_png(summary.pop("fleet"))
    assert summary == {
        "job_id": job.id,
        "job_state": "Finished",
        "job_description": "nightly alarms",
        "job_comment": "",
        "steps_this_run": 4,
        "steps_finished": 4,
        "occurrences_total": 5,
        "occurrences": "\n".join(
            [
                "| object | alarm | occurrences | alarm time |",
                "| --- | --- | ---: | ---: |",
                f"| LAN-01 | {HIGH} Temperature high | 3 | 50 min |",
                f"| LAN-01 | {VERY_HIGH} Temperature very high | 1 | 20 min |",
                f"| LAN-02 | {HIGH} Temperature high | 1 | 10 min |",
                f"| LAN-02 | {VERY_HIGH} Temperature very high | 0 | 0 s |",
            ]
        ),
    }
    step_ops = [op_key(step) for step in seeded_db.queue.get_steps(job.id)]
    job_states = [output_metadata(result, key).get("job_state") for key in step_ops]
    assert sorted(job_states, key=str) == ["Finished", None, None, None]


@pytest.mark.parametrize("holder", [None, "another-run"], ids=["created", "running"])
def test_a_run_cannot_take_a_job_that_is_not_queued(
    seeded_db: PerfDB, perfdb_url: str, dagster_instance: dg.DagsterInstance, holder: str | None
) -> None:
    job = alarm_job(seeded_db, queue=holder is not None)
    if holder is not None:
        seeded_db.queue.claim_job(job.id, holder)
    before = (seeded_db.queue.get_job(job.id), seeded_db.queue.history(job.id))

    result = execute(job.id, perfdb_url, dagster_instance)

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == PLAN_OP_NAME
    error = failure.step_failure_data.error
    assert error is not None
    text = error.to_string()
    state = "Created" if holder is None else f"Running (held by run {holder})"
    assert f"job {job.id} is {state}: run {result.run_id} cannot take it" in text
    assert started_step_keys(result) == [PLAN_OP_NAME]
    assert (seeded_db.queue.get_job(job.id), seeded_db.queue.history(job.id)) == before
    assert seeded_db.queue.get_steps(job.id) == []
    assert occurrences(seeded_db) == []


# --- running a job again ---------------------------------------------------------------------


def test_reexecution_from_failure_reruns_exactly_the_failed_steps(
    seeded_db: PerfDB,
    perfdb_url: str,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PERFDB_URL.name, perfdb_url)
    job = alarm_job(seeded_db)
    parent = execute_job(job.id, dagster_instance, tags=run_tags(job))
    assert not parent.success
    steps = seeded_db.queue.get_steps(job.id)
    failed = [step for step in steps if step.state == FAILED]
    finished = [step for step in steps if step.state == FINISHED]
    assert [step.object_name for step in failed] == [NO_DATA, NO_DATA]
    failed_keys = [op_key(step) for step in failed]
    occurrences_of_finished_steps = occurrences(seeded_db)

    # Re-executed before the cause is gone: the same steps fail again, the job ends Failed again.
    retry = execute_job(
        job.id,
        dagster_instance,
        dg.ReexecutionOptions.from_failure(parent.run_id, dagster_instance),
    )
    assert not retry.success
    assert started_step_keys(retry) == sorted(failed_keys)
    stored = seeded_db.queue.get_job(job.id)
    assert (stored.state, stored.comment, stored.run_id) == (
        FAILED,
        "2 (33.33%) steps failed",
        retry.run_id,
    )

    import_missing_values(seeded_db)
    child = execute_job(
        job.id, dagster_instance, dg.ReexecutionOptions.from_failure(retry.run_id, dagster_instance)
    )

    assert child.success
    run = dagster_instance.get_run_by_id(child.run_id)
    assert run is not None
    assert (run.parent_run_id, run.root_run_id) == (retry.run_id, parent.run_id)
    assert sorted(run.step_keys_to_execute or []) == started_step_keys(child)
    assert started_step_keys(child) == sorted([*failed_keys, SUMMARY_OP])
    # `execute_job` does not copy the parent's tags (the UI does): the step ops need only the run
    # config, which a re-execution always carries.
    assert JOB_ID_TAG not in run.tags

    actors = [f"run:{run_id}" for run_id in (parent.run_id, retry.run_id, child.run_id)]
    for step in failed:
        assert step_history(seeded_db, step.id)[1:] == [
            (CREATED, RUNNING, actors[0]),
            (RUNNING, FAILED, actors[0]),
            (FAILED, RUNNING, actors[1]),
            (RUNNING, FAILED, actors[1]),
            (FAILED, RUNNING, actors[2]),
            (RUNNING, FINISHED, actors[2]),
        ]
        rerun = seeded_db.queue.get_step(step.id)
        assert (rerun.state, rerun.comment, rerun.attempts, rerun.run_id) == (
            FINISHED,
            None,
            3,
            child.run_id,
        )
    # The steps that had finished were not touched.
    assert [seeded_db.queue.get_step(step.id) for step in finished] == finished
    stored = seeded_db.queue.get_job(job.id)
    assert (stored.state, stored.comment, stored.run_id) == (FINISHED, None, child.run_id)
    assert job_transitions(seeded_db, job.id) == [
        (None, CREATED),
        (CREATED, QUEUED),
        (QUEUED, RUNNING),
        *[(RUNNING, FAILED), (FAILED, RUNNING)] * 2,
        (RUNNING, FINISHED),
    ]
    assert occurrence_counts(seeded_db) == EXPECTED_OCCURRENCES
    assert [o for o in occurrences(seeded_db) if o[0] != NO_DATA] == occurrences_of_finished_steps
    assert output_metadata(child, SUMMARY_OP)["steps_finished"] == 6


def test_a_requeued_failed_job_runs_only_the_steps_not_finished(
    seeded_db: PerfDB, perfdb_url: str, dagster_instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db)
    first = execute(job.id, perfdb_url, dagster_instance)
    assert not first.success
    before = {step.id: step for step in seeded_db.queue.get_steps(job.id)}
    failed = [step for step in before.values() if step.state == FAILED]

    import_missing_values(seeded_db)
    requeued = seeded_db.queue.queue_job(job.id)
    second = execute(job.id, perfdb_url, dagster_instance)

    assert second.success
    assert started_step_keys(second) == sorted([PLAN_OP_NAME, *map(op_key, failed), SUMMARY_OP])
    stored = seeded_db.queue.get_job(job.id)
    assert (stored.state, stored.comment, stored.queue_count, stored.run_id) == (
        FINISHED,
        None,
        requeued.queue_count,
        second.run_id,
    )
    after = {step.id: step for step in seeded_db.queue.get_steps(job.id)}
    for step_id, step in before.items():
        if step.state == FINISHED:
            assert after[step_id] == step
        else:
            assert (after[step_id].state, after[step_id].attempts) == (FINISHED, 2)
    assert occurrence_counts(seeded_db) == EXPECTED_OCCURRENCES


def test_reexecuting_all_steps_of_a_finished_job_recomputes_it_like_a_requeue(
    seeded_db: PerfDB,
    perfdb_url: str,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PERFDB_URL.name, perfdb_url)
    job = alarm_job(seeded_db, WITH_DATA)
    parent = execute_job(job.id, dagster_instance, tags=run_tags(job))
    assert parent.success
    first_outcome = outcome(seeded_db, job.id)
    steps = seeded_db.queue.get_steps(job.id)

    child = execute_job(
        job.id, dagster_instance, dg.ReexecutionOptions(parent_run_id=parent.run_id)
    )

    assert child.success
    assert started_step_keys(child) == sorted([PLAN_OP_NAME, *map(op_key, steps), SUMMARY_OP])
    assert outcome(seeded_db, job.id) == first_outcome
    recomputed = seeded_db.queue.get_steps(job.id)
    assert {(step.state, step.attempts, step.run_id) for step in recomputed} == {
        (FINISHED, 2, child.run_id)
    }
    child_actor = f"run:{child.run_id}"
    assert step_history(seeded_db, steps[0].id)[-3:] == [
        (FINISHED, CREATED, child_actor),
        (CREATED, RUNNING, child_actor),
        (RUNNING, FINISHED, child_actor),
    ]
    assert job_transitions(seeded_db, job.id)[-2:] == [(FINISHED, RUNNING), (RUNNING, FINISHED)]

    # A requeue of the same job ends in the same place.
    seeded_db.queue.queue_job(job.id)
    assert execute(job.id, perfdb_url, dagster_instance).success
    assert outcome(seeded_db, job.id) == first_outcome


# --- a lost database connection --------------------------------------------------------------


def test_a_step_op_retries_a_lost_connection_and_finishes(
    seeded_db: PerfDB,
    perfdb_url: str,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobs_pipeline.perfdb.errors import ConnectionFailed
    from jobs_pipeline.perfdb.queue import JobQueue

    job = alarm_job(seeded_db, WITH_DATA[:1])
    original = JobQueue.finish_step
    calls: list[int] = []

    def flaky_finish_step(self: JobQueue, step_id: int, *args: Any, **kwargs: Any) -> Any:
        calls.append(step_id)
        if len(calls) == 1:  # the first step's first finish meets a restarting server
            raise ConnectionFailed("cannot connect to the performance database: restarting")
        return original(self, step_id, *args, **kwargs)

    monkeypatch.setattr(JobQueue, "finish_step", flaky_finish_step)

    result = execute(job.id, perfdb_url, dagster_instance)

    assert result.success
    retried = [
        event.step_key
        for event in result.all_events
        if event.event_type_value == "STEP_UP_FOR_RETRY"
    ]
    assert len(retried) == 1
    after = seeded_db.queue.get_job(job.id)
    assert after.state == JobState.FINISHED
    step = seeded_db.queue.get_step(calls[0])
    assert (step.state, step.attempts) == (JobState.FINISHED, 2)  # restarted by its own run


def test_with_step_pictures_on_each_step_op_carries_its_alarm_timeline(
    seeded_db: PerfDB,
    perfdb_url: str,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBS_PIPELINE_STEP_PICTURES", "1")
    job = alarm_job(seeded_db, WITH_DATA[:1])

    result = execute(job.id, perfdb_url, dagster_instance)

    assert result.success
    for step in seeded_db.queue.get_steps(job.id):
        metadata = output_metadata(result, op_key(step))
        assert_inline_png(metadata["timeline"])
        assert metadata["timeline"].startswith(f"![step {step.id} timeline]")


def test_without_the_setting_steps_draw_nothing(
    seeded_db: PerfDB, perfdb_url: str, dagster_instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db, WITH_DATA[:1])
    result = execute(job.id, perfdb_url, dagster_instance)
    assert result.success
    step = seeded_db.queue.get_steps(job.id)[0]
    assert "timeline" not in output_metadata(result, op_key(step))
