"""Claiming a Queued job is atomic: of 8 real processes racing for it, exactly one wins."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InvalidTransition
from jobs_pipeline.perfdb.states import JobState

RACERS = 8
ALARM_CALC = "Alarm Calculation"
PARAMETERS = {
    "object_names": ["LAN-01"],
    "alarm_ids": [1],
    "start": "2024-01-01 00:00:00",
    "end": "2024-01-02 00:00:00",
}
JOIN_TIMEOUT = 60


def _claim(url: str, job_id: int, racer: int, barrier: Barrier, results: Any) -> None:
    """One racer: its own engine, connected before the start signal, then one claim."""
    perfdb = PerfDB.connect(url)
    try:
        perfdb.queue.get_job(job_id)  # open the connection now, not inside the race
        barrier.wait(timeout=JOIN_TIMEOUT)
        try:
            job = perfdb.queue.claim_job(job_id, f"run-{racer}")
        except InvalidTransition as error:
            results.put((racer, "lost", str(error)))
        else:
            results.put((racer, "won", job.run_id))
    except Exception as error:  # reported to the test rather than lost in a child's stderr
        results.put((racer, "error", f"{type(error).__name__}: {error}"))
    finally:
        perfdb.dispose()


def race_for_one_job(url: str) -> None:
    perfdb = PerfDB.connect(url)
    job = perfdb.queue.create_job(ALARM_CALC, PARAMETERS, queue=True)
    perfdb.dispose()  # no connection of the parent is inherited by the racers

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(RACERS)
    results = context.Queue()
    racers = [
        context.Process(target=_claim, args=(url, job.id, racer, barrier, results))
        for racer in range(RACERS)
    ]
    for process in racers:
        process.start()
    outcomes = sorted(results.get(timeout=JOIN_TIMEOUT) for _ in racers)
    for process in racers:
        process.join(timeout=JOIN_TIMEOUT)
        assert process.exitcode == 0

    assert [outcome for outcome in outcomes if outcome[1] == "error"] == []
    winners = [(racer, run_id) for racer, result, run_id in outcomes if result == "won"]
    losers = [message for _, result, message in outcomes if result == "lost"]
    assert len(winners) == 1, outcomes
    assert len(losers) == RACERS - 1
    assert set(losers) == {f"job {job.id} is Running, expected Queued"}

    [(winner, run_id)] = winners
    perfdb = PerfDB.connect(url)
    try:
        claimed = perfdb.queue.get_job(job.id)
        history = perfdb.queue.history(job.id)
    finally:
        perfdb.dispose()
    assert (claimed.state, claimed.run_id) == (JobState.RUNNING, f"run-{winner}")
    assert run_id == f"run-{winner}"
    # Only the winner's transition was written.
    assert [(entry.from_state, entry.to_state, entry.actor) for entry in history] == [
        (None, JobState.CREATED, "user:api"),
        (JobState.CREATED, JobState.QUEUED, "user:api"),
        (JobState.QUEUED, JobState.RUNNING, f"run:run-{winner}"),
    ]


def test_one_of_eight_processes_claims_a_job_on_postgresql(pg_perfdb_url: str) -> None:
    race_for_one_job(pg_perfdb_url)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "race.sqlite"
    target.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{target}"


def test_one_of_eight_processes_claims_a_job_on_sqlite(sqlite_url: str) -> None:
    race_for_one_job(sqlite_url)
