"""One owner per job: the transition table, fenced run writes, cancellation, heartbeats and
bounded comments, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from jobs_pipeline.jobs.heartbeat_thread import HeartbeatThread
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.catalog import listed
from jobs_pipeline.perfdb.errors import (
    InvalidTransition,
    JobCanceled,
    LostOwnership,
    NotFound,
)
from jobs_pipeline.perfdb.occurrences import OCCURRENCES, replace_occurrences
from jobs_pipeline.perfdb.queue import MAX_COMMENT_CHARS, bounded, job_outcome
from jobs_pipeline.perfdb.states import (
    JOB_TRANSITIONS,
    STEP_TRANSITIONS,
    Actor,
    check_transitions,
)
from jobs_pipeline_tests.perfdb.queue_jobs import (
    ALARM_ID,
    CREATED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    job_in_state,
    new_job,
    running_job,
    step_states,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


# --- the transition table --------------------------------------------------------------------


def test_the_table_holds_every_move_of_the_design_and_no_other() -> None:
    moves = {(source, target) for source, target in JOB_TRANSITIONS}
    assert moves == {
        (None, CREATED),
        (None, QUEUED),
        (CREATED, CREATED),
        (CREATED, QUEUED),
        (FAILED, QUEUED),
        (FINISHED, QUEUED),
        (QUEUED, RUNNING),
        (CREATED, RUNNING),
        (FAILED, RUNNING),
        (FINISHED, RUNNING),
        (RUNNING, FINISHED),
        (RUNNING, FAILED),
        (QUEUED, FAILED),
        (CREATED, FAILED),
    }
    # Only a run takes a job; only a person queues it (a schedule creates its periods' jobs
    # Queued); nobody but the run and the reconciler ends a Running job.
    assert all(
        who == {Actor.RUN} for (_, target), who in JOB_TRANSITIONS.items() if target == RUNNING
    )
    assert all(
        who == {Actor.USER}
        for (source, target), who in JOB_TRANSITIONS.items()
        if target == QUEUED and source is not None
    )
    assert JOB_TRANSITIONS[None, QUEUED] == {Actor.USER, Actor.SENSOR}
    assert JOB_TRANSITIONS[RUNNING, FAILED] == {Actor.RUN, Actor.RECONCILER}
    assert STEP_TRANSITIONS[RUNNING, FINISHED] == {Actor.RUN}


def test_a_move_outside_the_table_is_a_bug_not_bad_input() -> None:
    with pytest.raises(ValueError, match="sensor may not move a Running record to Finished"):
        check_transitions(JOB_TRANSITIONS, (RUNNING,), FINISHED, Actor.SENSOR)
    with pytest.raises(ValueError, match="reconciler may not move a Running record to Finished"):
        check_transitions(STEP_TRANSITIONS, (RUNNING,), FINISHED, Actor.RECONCILER)
    check_transitions(JOB_TRANSITIONS, (QUEUED, FAILED), RUNNING, Actor.RUN)


def test_a_user_cannot_fail_a_running_job_behind_its_runs_back(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, _ = running_job(perfdb, object_ids)
    with pytest.raises(LostOwnership, match="run None no longer holds it"):
        perfdb.queue.fail_job(job_id, "stop", from_states=(RUNNING,), who=Actor.RECONCILER)
    assert perfdb.queue.get_job(job_id).state == RUNNING


# --- fenced writes ---------------------------------------------------------------------------


def occurrence_rows(perfdb: PerfDB) -> list[tuple[object, ...]]:
    with perfdb.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.select(OCCURRENCES.c.object_id, OCCURRENCES.c.start_time).order_by(
                    OCCURRENCES.c.start_time
                )
            )
        ]


def write_one_occurrence(object_id: int, hour: int):  # type: ignore[no-untyped-def]
    def write(connection: sa.Connection) -> None:
        replace_occurrences(
            connection,
            object_id=object_id,
            alarm_id=ALARM_ID,
            start=T0,
            end=T0 + timedelta(days=1),
            spans=[(T0 + timedelta(hours=hour), T0 + timedelta(hours=hour + 1), 1.0)],
            step_id=None,
        )

    return write


def test_a_run_that_lost_its_job_writes_nothing(perfdb: PerfDB, object_ids: dict[str, int]) -> None:
    job_id, [first, second, _] = running_job(perfdb, object_ids, run_id="old-run")
    perfdb.queue.start_step(first, "old-run")
    perfdb.queue.start_step(second, "old-run")
    # The old run is declared dead; a newer run takes the job over and restarts the step.
    perfdb.queue.fail_running_steps_of_run("old-run", "run old-run stopped sending heartbeats")
    perfdb.queue.queue_job(job_id)
    perfdb.queue.claim_job(job_id, "new-run")
    perfdb.queue.start_step(first, "new-run")
    before = (perfdb.queue.get_steps(job_id), perfdb.queue.history(job_id))

    # The old run was still executing after all: its late writes are refused whole.
    with pytest.raises(LostOwnership, match="held by run new-run: run old-run no longer holds"):
        perfdb.queue.finish_step(
            first, run_id="old-run", write=write_one_occurrence(object_ids["LAN-01"], 3)
        )
    with pytest.raises(LostOwnership):
        perfdb.queue.finish_step(second, "late failure", run_id="old-run")
    with pytest.raises(LostOwnership):
        perfdb.queue.start_step(second, "old-run")
    with pytest.raises(LostOwnership):
        perfdb.queue.finalise_job(job_id, run_id="old-run", run_ended=True)

    assert (perfdb.queue.get_steps(job_id), perfdb.queue.history(job_id)) == before
    assert occurrence_rows(perfdb) == []
    # The holder's results and its Finished state commit together.
    perfdb.queue.finish_step(
        first, run_id="new-run", write=write_one_occurrence(object_ids["LAN-01"], 3)
    )
    assert len(occurrence_rows(perfdb)) == 1


def test_results_that_cannot_be_stored_leave_the_step_running_and_nothing_written(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    _, [first, *_] = running_job(perfdb, object_ids)
    perfdb.queue.start_step(first, "run-a")

    def broken(connection: sa.Connection) -> None:
        write_one_occurrence(object_ids["LAN-01"], 3)(connection)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        perfdb.queue.finish_step(first, run_id="run-a", write=broken)

    assert perfdb.queue.get_step(first).state == RUNNING
    assert occurrence_rows(perfdb) == []


def test_the_holding_run_may_restart_its_own_running_step(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    # A retry after a lost connection, or a redelivered task, starts the step again.
    _, [first, *_] = running_job(perfdb, object_ids)
    perfdb.queue.start_step(first, "run-a")
    again = perfdb.queue.start_step(first, "run-a")
    assert (again.state, again.attempts, again.run_id) == (RUNNING, 2, "run-a")


def test_finalising_an_ended_job_returns_it_unchanged(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id = job_in_state(perfdb, object_ids, FINISHED)
    before = perfdb.queue.history(job_id)
    job = perfdb.queue.finalise_job(job_id, run_id="whoever", run_ended=True)
    assert job.state == FINISHED
    assert perfdb.queue.history(job_id) == before


# --- cancellation ----------------------------------------------------------------------------


def test_cancel_fails_created_and_queued_jobs_at_once(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    for queue in (False, True):
        job = new_job(perfdb, queue=queue)
        canceled = perfdb.queue.cancel_job(job.id, actor="ana")
        assert (canceled.state, canceled.comment) == (FAILED, "canceled by ana")
        assert canceled.finished is not None
        last = perfdb.queue.history(job.id)[-1]
        assert (last.to_state, last.actor, last.comment) == (FAILED, "user:ana", "canceled by ana")
        # It can be queued again.
        assert perfdb.queue.queue_job(job.id).state == QUEUED


def test_cancel_of_an_ended_or_unknown_job_is_refused(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    for state in (FINISHED, FAILED):
        job_id = job_in_state(perfdb, object_ids, state)
        before = perfdb.queue.get_job(job_id)
        with pytest.raises(InvalidTransition, match=f"is {state.label}: nothing to cancel"):
            perfdb.queue.cancel_job(job_id)
        assert perfdb.queue.get_job(job_id) == before
    with pytest.raises(NotFound, match="job 4242 does not exist"):
        perfdb.queue.cancel_job(4242)


def test_a_canceled_running_job_starts_no_more_steps_and_ends_failed(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [done, busy, waiting] = running_job(perfdb, object_ids)
    perfdb.queue.start_step(done, "run-a")
    perfdb.queue.finish_step(done, run_id="run-a")
    perfdb.queue.start_step(busy, "run-a")

    requested = perfdb.queue.cancel_job(job_id, actor="ana")

    assert requested.state == RUNNING
    assert (requested.cancel_requested is not None, requested.cancel_requested_by) == (True, "ana")
    assert perfdb.queue.history(job_id)[-1].comment == "cancel requested by ana"
    # A second request changes nothing of the first.
    assert perfdb.queue.cancel_job(job_id, actor="bob").cancel_requested_by == "ana"
    # The step already running finishes; the next one is not started.
    perfdb.queue.finish_step(busy, run_id="run-a")
    with pytest.raises(JobCanceled, match=f"job {job_id} was canceled by ana"):
        perfdb.queue.start_step(waiting, "run-a")

    job = perfdb.queue.get_job(job_id)
    assert (job.state, job.comment) == (FAILED, "canceled by ana; 1 (33.33%) steps failed")
    assert job.cancel_requested is None
    assert step_states(perfdb, job_id) == [FINISHED, FINISHED, FAILED]
    assert perfdb.queue.get_step(waiting).comment == "canceled, not run"


# --- heartbeats ------------------------------------------------------------------------------


def test_a_beat_counts_only_while_the_run_holds_the_job(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [step] = running_job(perfdb, object_ids, count=1)
    claimed = perfdb.queue.get_job(job_id).heartbeat
    assert claimed is not None

    assert perfdb.queue.beat(job_id, "run-a")
    assert not perfdb.queue.beat(job_id, "run-b")
    perfdb.queue.start_step(step, "run-a")
    perfdb.queue.finish_step(step, run_id="run-a")
    assert not perfdb.queue.beat(job_id, "run-a")


def test_the_heartbeat_thread_beats_and_stops_once_the_job_is_final(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [step] = running_job(perfdb, object_ids, count=1)
    first = perfdb.queue.get_job(job_id).heartbeat
    assert first is not None

    with HeartbeatThread(perfdb.queue, job_id, "run-a", interval=0.05) as heartbeat:
        deadline = time.monotonic() + 10
        while perfdb.queue.get_job(job_id).heartbeat == first:
            assert time.monotonic() < deadline, "no heartbeat written"
            time.sleep(0.02)
        perfdb.queue.start_step(step, "run-a")
        perfdb.queue.finish_step(step, run_id="run-a")
        deadline = time.monotonic() + 10
        while heartbeat.alive:  # it stops by itself: the job is no longer held
            assert time.monotonic() < deadline, "heartbeat still running"
            time.sleep(0.02)


def test_a_waiting_run_beats_on_its_queued_job_until_it_claims_it(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id = new_job(perfdb, queue=True).id
    assert perfdb.queue.get_job(job_id).heartbeat is None

    with HeartbeatThread(perfdb.queue, job_id, "run-a", interval=0.05, wait_for_claim=True) as beat:
        deadline = time.monotonic() + 10
        while perfdb.queue.get_job(job_id).heartbeat is None:  # Queued: the waiting run beats
            assert time.monotonic() < deadline, "no heartbeat on the Queued job"
            time.sleep(0.02)
        perfdb.queue.claim_job(job_id, "run-a")
        claimed = perfdb.queue.get_job(job_id).heartbeat
        while perfdb.queue.get_job(job_id).heartbeat == claimed:  # held: beats as the holder
            assert time.monotonic() < deadline, "no heartbeat once claimed"
            time.sleep(0.02)
        assert beat.alive
    # Only a Queued job takes such a beat.
    assert not perfdb.queue.beat_queued(job_id)
    assert not perfdb.queue.beat_queued(job_in_state(perfdb, object_ids, CREATED))


# --- outcome wording and bounded comments ----------------------------------------------------


def test_the_outcome_tells_failed_steps_from_steps_that_never_ran() -> None:
    assert job_outcome({FINISHED: 3}) == (FINISHED, None)
    assert job_outcome({FINISHED: 2, FAILED: 1}) == (FAILED, "1 (33.33%) steps failed")
    assert job_outcome({FAILED: 1, CREATED: 55}) == (FAILED, "1 (1.79%) steps failed, 55 not run")
    assert job_outcome({FINISHED: 1, CREATED: 55}) == (FAILED, "55 of 56 steps not run")
    assert job_outcome({}) == (FAILED, "no steps were created")


def test_comments_stay_a_few_kilobytes_whatever_the_reason(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    huge = "unknown object names: " + ", ".join(f"'X-{i}'" for i in range(200_000))
    job = new_job(perfdb, queue=True)

    failed = perfdb.queue.fail_job(job.id, huge, who=Actor.SENSOR)

    assert failed.comment is not None
    assert len(failed.comment) < MAX_COMMENT_CHARS + 100
    assert failed.comment.endswith(f"... ({len(huge) - MAX_COMMENT_CHARS} more characters)")
    history = perfdb.queue.history(job.id)[-1].comment
    assert history is not None and len(history) < MAX_COMMENT_CHARS + 100
    assert bounded(None) is None and bounded("short") == "short"


def test_unknown_names_are_listed_first_few_and_counted(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    names = [f"NOPE-{i}" for i in range(180_000)]
    with pytest.raises(NotFound) as raised:
        perfdb.catalog.object_ids(["LAN-01", *names])
    message = str(raised.value)
    assert message.startswith("unknown object names: 'NOPE-0', 'NOPE-1', ")
    assert message.endswith(" and 179990 more")
    assert len(message) < 300
    assert listed(["a", "b"]) == "a, b"


# --- occurrences exactly once ----------------------------------------------------------------


def test_two_writers_replacing_the_same_period_leave_one_set_of_rows(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    object_id = object_ids["LAN-01"]
    spans = [
        (T0 + timedelta(hours=hour), T0 + timedelta(hours=hour, minutes=30), float(hour))
        for hour in (1, 5, 9)
    ]
    rounds = 300
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(rounds):
                barrier.wait(timeout=30)
                perfdb.occurrences.replace(
                    object_id=object_id,
                    alarm_id=ALARM_ID,
                    start=T0,
                    end=T0 + timedelta(days=1),
                    spans=spans,
                )
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(occurrence_rows(perfdb)) == 3


# --- SQLite locking --------------------------------------------------------------------------


def test_sqlite_readers_do_not_wait_for_a_writer_and_a_busy_writer_gets_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: object
) -> None:
    import shutil

    from jobs_pipeline.perfdb.engine import begin, create_perfdb_engine
    from jobs_pipeline.perfdb.errors import Busy

    path = tmp_path_factory.mktemp("locks") / "perfdb.sqlite"
    shutil.copyfile(str(sqlite_template), path)
    writer = PerfDB.connect(f"sqlite:///{path}")
    other = PerfDB(create_perfdb_engine(f"sqlite:///{path}", busy_timeout_seconds=0.2))
    job = new_job(writer)
    try:
        with begin(writer.engine) as holding:  # holds the write lock
            holding.exec_driver_sql("UPDATE job_instances SET description = 'x'")
            started = time.monotonic()
            assert other.queue.get_job(job.id).description != "x"  # reads need no lock
            assert other.queue.list_jobs() != []
            assert time.monotonic() - started < 0.2
            with pytest.raises(Busy, match=r"stayed locked by another writer for 0.2 s"):
                other.queue.queue_job(job.id)
    finally:
        writer.dispose()
        other.dispose()


def test_a_huge_invalid_parameter_gives_a_short_error(perfdb: PerfDB) -> None:
    from jobs_pipeline.perfdb.errors import InvalidParameters
    from jobs_pipeline_tests.perfdb.queue_jobs import params

    with pytest.raises(InvalidParameters) as raised:
        perfdb.queue.validate_parameters("Alarm Calculation", params(start=["x"] * 500_000))
    assert len(str(raised.value)) < 500
    assert "parameter 'start'" in str(raised.value)
