"""Following a job live (`job watch`, and `job run` while it waits): one line per change off a
terminal, failures as they happen, the end of the job; on both backends."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from jobs_pipeline.cli.job import step_counts
from jobs_pipeline.cli.progress import JobProgress, follow
from jobs_pipeline.jobs import JobAlarmCalc, create_job
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import JobCanceled
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.orchestration.alarm_fleet import (
    ALARM_CALC,
    ALARM_IDS,
    ALL_OBJECTS,
    NO_DATA,
    PERIOD,
)
from jobs_pipeline_tests.perfdb.queue_jobs import running_job


def test_follow_prints_each_step_failures_and_the_end_of_the_job(seeded_db: PerfDB) -> None:
    parameters = {"object_names": list(ALL_OBJECTS), "alarm_ids": list(ALARM_IDS), **PERIOD}
    job = create_job(seeded_db, ALARM_CALC, parameters, queue=True)
    out = io.StringIO()

    def run_later() -> None:
        time.sleep(0.3)
        JobAlarmCalc(job.id, perfdb=seeded_db).run()

    worker = threading.Thread(target=run_later)
    worker.start()
    try:
        ended = follow(seeded_db.queue, job.id, out=out, tty=False, poll_seconds=0.05)
    finally:
        worker.join()

    lines = out.getvalue().splitlines()
    assert ended.state == JobState.FAILED
    assert lines[0] == f"job {job.id} Queued: waiting for run ..."
    failures = [line for line in lines if " failed: " in line]
    assert len(failures) == 2 and all(NO_DATA in line for line in failures)
    assert lines[-1] == f"job {job.id} Failed (2 (33.33%) steps failed)"
    # Every step's end was shown, whatever the polling caught in between.
    assert sum(1 for line in lines if line.startswith("step ")) >= 6


def test_job_watch_of_an_ended_job_returns_at_once_with_its_outcome(
    seeded_db: PerfDB, perfdb_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs_pipeline.cli import main

    parameters = {"object_names": [NO_DATA], "alarm_ids": list(ALARM_IDS), **PERIOD}
    job = create_job(seeded_db, ALARM_CALC, parameters, queue=True)
    JobAlarmCalc(job.id, perfdb=seeded_db).run()

    code = main(["--db", perfdb_url, "job", "watch", str(job.id)])

    out, err = capsys.readouterr()
    # One line says how the job ended; the exit code says it failed.
    assert code == 1
    assert out == f"job {job.id} Failed (2 (100.00%) steps failed): 2/2 steps done, 2 failed\n"
    assert err == ""


def test_steps_of_a_canceled_job_that_never_ran_are_counted_apart_in_one_line(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, steps = running_job(perfdb, object_ids, count=3)
    out = io.StringIO()
    progress = JobProgress(perfdb.queue, job_id, out=out, tty=False)
    perfdb.queue.start_step(steps[0], "run-a")
    perfdb.queue.finish_step(steps[0], run_id="run-a")
    perfdb.queue.cancel_job(job_id, actor="ana")
    with pytest.raises(JobCanceled):
        perfdb.queue.start_step(steps[1], "run-a")

    job = progress.poll()

    assert (job.state, progress.failed, len(progress.not_run)) == (JobState.FAILED, 0, 2)
    lines = out.getvalue().splitlines()
    assert lines[-2:] == [
        "2 steps canceled, not run [3/3 steps done, 0 failed, 2 not run]",
        f"job {job_id} Failed (canceled by ana; 2 (66.67%) steps failed)",
    ]
    assert step_counts(perfdb.queue.get_steps(job_id)) == "3 steps: 1 Finished, 2 not run"


def test_a_step_that_commits_after_a_later_one_is_not_missed(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    # Step A's transaction waits (here: is held) before it takes the job's row lock; meanwhile
    # step B finishes, and the watcher sees B. A commits afterwards; its time may be the earlier
    # of the two (PostgreSQL's now() is its transaction's start), so paging by time misses it.
    job_id, [a, b] = running_job(perfdb, object_ids, count=2)
    perfdb.queue.start_step(a, "run-a")
    perfdb.queue.start_step(b, "run-a")
    out = io.StringIO()
    progress = JobProgress(perfdb.queue, job_id, out=out, tty=False)
    paused, go = threading.Event(), threading.Event()
    slow_writer = "slow-writer"

    @sa.event.listens_for(perfdb.engine, "before_cursor_execute")
    def hold_before_the_lock(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        locking = "FOR UPDATE" in statement or statement.startswith("BEGIN IMMEDIATE")
        if threading.current_thread().name == slow_writer and locking and not paused.is_set():
            paused.set()
            go.wait(30)

    writer = threading.Thread(
        target=perfdb.queue.finish_step, args=(a,), kwargs={"run_id": "run-a"}, name=slow_writer
    )
    writer.start()
    try:
        assert paused.wait(30)
        perfdb.queue.finish_step(b, run_id="run-a")
        progress.poll()
        assert progress.states == {a: JobState.RUNNING, b: JobState.FINISHED}
    finally:
        go.set()
        writer.join()
        sa.event.remove(perfdb.engine, "before_cursor_execute", hold_before_the_lock)

    job = progress.poll()

    assert progress.states == {a: JobState.FINISHED, b: JobState.FINISHED}
    assert job.state == JobState.FINISHED
    lines = out.getvalue().splitlines()
    assert any(line.startswith(f"step {a} ") and "Finished" in line for line in lines)
    assert lines[-1] == f"job {job_id} Finished"
