"""What a run tells people, in real runs of their own process (SQLite and PostgreSQL
performance databases): a canceled job stops launching work and says so once; a step that fails
for a reason meant for people is one line on the console; the job's outcome is on the run page."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.perfdb.step_dependencies import CANCELED_NOT_RUN
from jobs_pipeline_tests.orchestration.alarm_fleet import NO_DATA, alarm_job, seed_fleet
from jobs_pipeline_tests.orchestration.console_runs import ConsoleRun, run_with_console
from jobs_pipeline_tests.orchestration.processes import (
    CANCELING_STEPS_SPEC,
    dagster_environment,
    instance_for_environment,
    make_dagster_home,
)

pytestmark = pytest.mark.slow

STEPS = 35
FINISHED_BEFORE_CANCEL = 8
MAX_CONSOLE_LINES = 20


@pytest.fixture
def env(perfdb_url: str, tmp_path: Path) -> dict[str, str]:
    """A Dagster instance on SQLite files under the test's folder, on this test's database."""
    return dagster_environment(make_dagster_home(tmp_path / "dagster_home"), perfdb_url)


def events_of(env: dict[str, str], run_id: str, event_type: dg.DagsterEventType) -> list:
    with instance_for_environment(env) as instance:
        return [
            record.event_log_entry
            for record in instance.get_records_for_run(run_id, of_type=event_type).records
        ]


def all_metadata(env: dict[str, str], run_id: str) -> list[dict]:
    """The metadata of every event of the run that has some."""
    with instance_for_environment(env) as instance:
        found = []
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            data = event.event_specific_data if event is not None else None
            for source in (data, getattr(data, "user_failure_data", None)):
                metadata = getattr(source, "metadata", None)
                if metadata:
                    found.append(dict(metadata))
        return found


def test_a_canceled_job_stops_launching_work_and_tells_it_once(
    perfdb: PerfDB, env: dict[str, str]
) -> None:
    perfdb.queue.upsert_job_types([CANCELING_STEPS_SPEC])
    perfdb.catalog.ensure_objects(["WT-01"])
    job = perfdb.queue.create_job(
        CANCELING_STEPS_SPEC.name,
        {"object": "WT-01", "steps": STEPS, "cancel_after": FINISHED_BEFORE_CANCEL},
        description="nightly check",
        queue=True,
    )

    run = run_with_console(job.id, env)

    steps = perfdb.queue.get_steps(job.id)
    finished = [step for step in steps if step.state == JobState.FINISHED]
    not_run = [step for step in steps if step.comment == CANCELED_NOT_RUN]
    assert [step.position for step in finished] == list(range(FINISHED_BEFORE_CANCEL))
    assert len(not_run) == STEPS - FINISHED_BEFORE_CANCEL
    assert all(step.state == JobState.FAILED for step in not_run)
    assert all(step.attempts == 0 and step.run_id == run.run_id for step in not_run)
    job = perfdb.queue.get_job(job.id)
    assert job.state == JobState.FAILED
    assert job.comment == "canceled by cli; 27 (77.14%) steps failed"
    # The op that met the cancel fails, once; the run stops there and ends Canceled: the step
    # ops of the steps not run never start.
    failures = events_of(env, run.run_id, dg.DagsterEventType.STEP_FAILURE)
    assert len(failures) == 1, [entry.step_key for entry in failures]
    started = events_of(env, run.run_id, dg.DagsterEventType.STEP_START)
    assert len(started) == 1 + FINISHED_BEFORE_CANCEL + 1  # the plan, 8 steps, the one canceled
    with instance_for_environment(env) as instance:
        ended = instance.get_run_by_id(run.run_id)
        assert ended is not None and ended.status == dg.DagsterRunStatus.CANCELED
    assert_quiet(run, at_most=MAX_CONSOLE_LINES)
    assert f"job {job.id} was canceled by cli: 27 steps not run" in run.output
    # The job's outcome is on the run page.
    outcomes = [meta for meta in all_metadata(env, run.run_id) if "job_state" in meta]
    assert outcomes, "no event of the run carries the job's outcome"
    assert outcomes[-1]["job_state"].value == "Failed"
    # Steps about an object and no alarm: the table of what they wrote, not the alarm heat map.
    assert "steps" in outcomes[-1] and "steps_not_finished" in outcomes[-1]
    assert outcomes[-1]["steps_not_run"].value == STEPS - FINISHED_BEFORE_CANCEL


def test_a_step_failure_meant_for_people_is_one_line_on_the_console(
    perfdb: PerfDB, env: dict[str, str]
) -> None:
    seed_fleet(perfdb)
    job = alarm_job(perfdb)

    run = run_with_console(job.id, env)

    failed = [step for step in perfdb.queue.get_steps(job.id) if step.state == JobState.FAILED]
    assert [step.object_name for step in failed] == [NO_DATA, NO_DATA]
    # The plan, one line per failed step, the summary not run, the run failed.
    assert_quiet(run, at_most=len(failed) + 3)
    for step in failed:
        [line] = [line for line in run.lines if f"s{step.id}_" in line and "STEP_FAILURE" in line]
        assert line.endswith(f"failed. {step.comment}")
    # The run page keeps the message first.
    failures = events_of(env, run.run_id, dg.DagsterEventType.STEP_FAILURE)
    assert len(failures) == len(failed)
    for entry in failures:
        data = entry.dagster_event.event_specific_data
        assert data.user_failure_data.description.startswith("no data for feature")


def assert_quiet(run: ConsoleRun, *, at_most: int) -> None:
    assert "Stack Trace" not in run.output, run.output
    assert "Traceback" not in run.output, run.output
    assert len(run.lines) <= at_most, "\n".join(run.lines)
