"""Chaos: 30 jobs through a real daemon on a private PostgreSQL cluster, and while they run, the
faults a production deployment meets. Afterwards every job has ended with a reason, a requeue
finishes them all, and the results equal a clean standalone run's.

Faults, one after another while runs are in flight:
- SIGKILL of a run worker in the middle of a step;
- a run canceled while it waits in Dagster's run queue;
- a cancel request written to a Running job's row, as a frontend would;
- rows moved by hand with a worker's plain SQL: a Running job handed to a run that does not
  exist (its real run's step stays Running under the older run), and a Queued job set Running
  with no run id;
- a PostgreSQL restart (Dagster's storage and the performance database alike);
- SIGKILL of the whole daemon (code server and run workers with it), then a new daemon.
Jobs come in identical pairs, so two jobs over the same objects and alarms run at once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from jobs_pipeline.demo.seeding import store_fleet
from jobs_pipeline.demo.synthetic_fleet import generate_fleet
from jobs_pipeline.jobs import JobAlarmCalc, create_job, upgrade_database
from jobs_pipeline.orchestration.tags import QUEUE_COUNT_TAG
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.orchestration.processes import (
    PACED_ALARM_CALC_SPEC,
    PID_DIR_ENV,
    Daemon,
    dagster_environment,
    instance_for_environment,
    make_dagster_home,
    running_daemon,
    wait_for,
    write_workspace,
)
from jobs_pipeline_tests.pg_cluster import ThrowawayCluster

pytestmark = pytest.mark.slow

JOBS = 30
OBJECTS = 3
ALARM_PAIRS = ((1001, 1002), (1003, 1004))
HEARTBEAT_SECONDS = 1
# Short enough for a quick test, long enough that a loaded machine does not make a live run
# look dead (a run also has this long to claim its job once it started).
SILENCE_SECONDS = 15
# Each fault must be reconciled within this (the promise); the whole queue may take longer to
# drain on a loaded 2-core machine, where every run is a fresh Python process.
RECONCILE_SECONDS = 90.0
DRAIN_SECONDS = 300.0
FINAL = (JobState.FINISHED, JobState.FAILED)
FLEET = generate_fleet(objects=OBJECTS, days=7, seed=3)


def job_parameters(index: int) -> dict[str, Any]:
    """Six distinct (object, alarms) combinations, five jobs each."""
    combination = index % (OBJECTS * len(ALARM_PAIRS))
    return {
        "object_names": [FLEET.object_names[combination % OBJECTS]],
        "alarm_ids": list(ALARM_PAIRS[combination // OBJECTS]),
        "start": FLEET.start.isoformat(),
        "end": FLEET.end.isoformat(),
    }


@dataclass
class Fault:
    name: str
    resolved: Callable[[PerfDB], bool]
    injected_at: float = field(default_factory=time.monotonic)
    resolved_at: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.resolved_at is None else self.resolved_at - self.injected_at


class Watch:
    """Polls the job table from a thread and notes when each fault's jobs were reconciled."""

    def __init__(self, perfdb: PerfDB) -> None:
        self.perfdb = perfdb
        self.faults: list[Fault] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def _poll(self) -> None:
        while not self._stop.wait(0.25):
            for fault in list(self.faults):
                if fault.resolved_at is None:
                    try:
                        if fault.resolved(self.perfdb):
                            fault.resolved_at = time.monotonic()
                    except Exception:
                        continue


def left_their_runs(held: dict[int, str]) -> Callable[[PerfDB], bool]:
    """Resolved once none of these jobs is Running for the run that held it at the fault."""

    def check(perfdb: PerfDB) -> bool:
        for job_id, run_id in held.items():
            job = perfdb.queue.get_job(job_id)
            if job.state == JobState.RUNNING and job.run_id == run_id:
                return False
        return True

    return check


def ended(*job_ids: int) -> Callable[[PerfDB], bool]:
    def check(perfdb: PerfDB) -> bool:
        return all(perfdb.queue.get_job(job_id).state in FINAL for job_id in job_ids)

    return check


def all_ended(perfdb: PerfDB) -> bool:
    return {job.state for job in perfdb.queue.list_jobs()} <= set(FINAL)


def unfinished(perfdb: PerfDB, instance: dg.DagsterInstance) -> str:
    """The jobs not yet ended, with their runs' status in Dagster, for a failure message."""
    parts = []
    for job in perfdb.queue.list_jobs():
        if job.state in FINAL:
            continue
        runs = instance.get_runs(dg.RunsFilter(tags={"jobs_pipeline/job_id": str(job.id)}))
        statuses = ", ".join(f"{run.run_id[:8]} {run.status.value}" for run in runs)
        parts.append(f"job {job.id} {job.state.label} [{statuses}]")
    return "; ".join(parts) or "none"


def running(perfdb: PerfDB) -> dict[int, str]:
    return {
        job.id: job.run_id or ""
        for job in perfdb.queue.list_jobs(state=JobState.RUNNING)
        if job.run_id
    }


def occurrence_rows(perfdb: PerfDB) -> list[tuple[Any, ...]]:
    return sorted(
        (o.object_name, o.alarm_id, o.start, o.end, o.peak_value) for o in perfdb.occurrences.list()
    )


def reference_occurrences(directory: Path) -> list[tuple[Any, ...]]:
    """Each distinct job run once, standalone, on a clean database with the same data."""
    perfdb = PerfDB.connect(f"sqlite:///{directory / 'reference.sqlite'}")
    try:
        upgrade_database(perfdb)
        store_fleet(perfdb, FLEET)
        for index in range(OBJECTS * len(ALARM_PAIRS)):
            job = create_job(perfdb, JobAlarmCalc._name, job_parameters(index))
            assert JobAlarmCalc(job.id, perfdb=perfdb).run() == []
        return occurrence_rows(perfdb)
    finally:
        perfdb.dispose()


@dataclass
class Deployment:
    cluster: ThrowawayCluster
    perfdb: PerfDB
    env: dict[str, str]
    workspace: Path
    log_dir: Path
    pid_dir: Path
    daemon: Daemon | None = None

    def start_daemon(self, stack: Any) -> Daemon:
        log = self.log_dir / f"daemon-{time.monotonic_ns()}.log"
        self.daemon = stack.enter_context(running_daemon(self.workspace, self.env, log))
        return self.daemon


@pytest.fixture
def deployment(private_pg_cluster: ThrowawayCluster, tmp_path: Path) -> Iterator[Deployment]:
    with sa.create_engine(
        private_pg_cluster.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    ).connect() as admin:
        admin.exec_driver_sql("CREATE DATABASE perfdb")
        admin.exec_driver_sql("CREATE DATABASE dagster")
    perfdb_url = private_pg_cluster.url_for("perfdb")
    perfdb = PerfDB.connect(perfdb_url)
    try:
        upgrade_database(perfdb)
        perfdb.queue.upsert_job_types([PACED_ALARM_CALC_SPEC])
        store_fleet(perfdb, FLEET)
        home = make_dagster_home(tmp_path / "dagster_home")
        env = dagster_environment(home, perfdb_url, private_pg_cluster.url_for("dagster"))
        pid_dir = tmp_path / "pids"
        pid_dir.mkdir()
        env |= {
            PID_DIR_ENV: str(pid_dir),
            "JOBS_PIPELINE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "JOBS_PIPELINE_HEARTBEAT_SILENCE_SECONDS": str(SILENCE_SECONDS),
        }
        yield Deployment(
            cluster=private_pg_cluster,
            perfdb=perfdb,
            env=env,
            workspace=write_workspace(tmp_path),
            log_dir=tmp_path,
            pid_dir=pid_dir,
        )
    finally:
        perfdb.dispose()


def kill_a_run_worker(deployment: Deployment) -> Fault:
    """SIGKILL the worker of a run that is inside a step."""

    def victim() -> tuple[int, str, int] | None:
        for job_id, run_id in running(deployment.perfdb).items():
            pid_file = deployment.pid_dir / f"{job_id}.pid"
            if pid_file.exists():
                pid = int(pid_file.read_text())
                assert deployment.daemon is not None
                # Only ever a process of the daemon's group, never this test.
                if pid != os.getpid() and os.getpgid(pid) == deployment.daemon.process.pid:
                    return job_id, run_id, pid
        return None

    job_id, run_id, pid = wait_for(victim, timeout=60, what="a run inside a step")
    os.kill(pid, signal.SIGKILL)
    return Fault("SIGKILL of a run worker", left_their_runs({job_id: run_id}))


def cancel_a_queued_run(instance: dg.DagsterInstance) -> tuple[Fault, int]:
    def queued_run() -> dg.DagsterRun | None:
        runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]), limit=1)
        return runs[0] if runs else None

    run = wait_for(queued_run, timeout=60, what="a run waiting in Dagster's queue")
    instance.run_coordinator.cancel_run(run.run_id)
    job_id = int(run.tags["jobs_pipeline/job_id"])
    return Fault("run canceled while queued", ended(job_id)), job_id


def request_a_cancel(perfdb: PerfDB) -> tuple[Fault, int]:
    job_id = wait_for(
        lambda: next(iter(running(perfdb)), None), timeout=60, what="a Running job to cancel"
    )
    with perfdb.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE job_instances SET cancel_requested = now(), cancel_requested_by = 'chaos' "
            f"WHERE id = {int(job_id)}"
        )
    return Fault("cancel request from the database", ended(job_id)), job_id


def hand_a_running_job_to_another_run(perfdb: PerfDB) -> tuple[Fault, int]:
    """A worker's plain SQL gives a Running job to a run that does not exist."""

    def handed() -> int | None:
        for job_id, run_id in running(perfdb).items():
            with perfdb.engine.begin() as connection:
                changed = connection.execute(
                    sa.text(
                        "UPDATE job_instances SET run_id = 'forged-run', actor = 'run:forged' "
                        "WHERE id = :id AND state_id = :running AND run_id = :run_id"
                    ),
                    {"id": job_id, "running": int(JobState.RUNNING), "run_id": run_id},
                ).rowcount
            if changed:
                return job_id
        return None

    job_id = wait_for(handed, timeout=60, what="a Running job to hand over")
    return Fault("a Running job handed to a run that does not exist", ended(job_id)), job_id


def set_a_queued_job_running_without_a_run(perfdb: PerfDB) -> tuple[Fault, int]:
    """A worker's plain SQL makes a Queued job Running with no run id (as `run()` may)."""

    def forged() -> int | None:
        for job in perfdb.queue.list_jobs(state=JobState.QUEUED, limit=5):
            with perfdb.engine.begin() as connection:
                changed = connection.execute(
                    sa.text(
                        "UPDATE job_instances SET state_id = :running, actor = 'run:standalone' "
                        "WHERE id = :id AND state_id = :queued"
                    ),
                    {
                        "id": job.id,
                        "running": int(JobState.RUNNING),
                        "queued": int(JobState.QUEUED),
                    },
                ).rowcount
            if changed:
                return job.id
        return None

    job_id = wait_for(forged, timeout=60, what="a Queued job to set Running")
    return Fault("a Queued job set Running without a run id", ended(job_id)), job_id


def test_no_job_is_left_behind_whatever_dies(deployment: Deployment, tmp_path: Path) -> None:
    from contextlib import ExitStack

    perfdb = deployment.perfdb
    expected = reference_occurrences(tmp_path)
    assert expected, "the reference found no occurrences: the comparison would prove nothing"
    jobs = [
        perfdb.queue.create_job(
            PACED_ALARM_CALC_SPEC.name, job_parameters(i), description=f"chaos {i}", queue=True
        ).id
        for i in range(JOBS)
    ]
    figures: list[str] = []

    with (
        ExitStack() as stack,
        instance_for_environment(deployment.env) as instance,
        Watch(perfdb) as watch,
    ):
        deployment.start_daemon(stack)

        watch.add(kill_a_run_worker(deployment))
        fault, queued_canceled = cancel_a_queued_run(instance)
        watch.add(fault)
        fault, cancel_requested = request_a_cancel(perfdb)
        watch.add(fault)
        fault, handed = hand_a_running_job_to_another_run(perfdb)
        watch.add(fault)
        fault, unheld = set_a_queued_job_running_without_a_run(perfdb)
        watch.add(fault)

        time.sleep(2)
        held = running(perfdb)
        deployment.cluster.restart()
        watch.add(Fault("PostgreSQL restart", left_their_runs(held)))

        time.sleep(3)
        held = running(perfdb)
        daemon = deployment.daemon
        assert daemon is not None
        os.killpg(daemon.process.pid, signal.SIGKILL)
        daemon.process.wait()
        watch.add(Fault("SIGKILL of the whole daemon, then a new one", left_their_runs(held)))
        deployment.start_daemon(stack)

        wait_for(
            lambda: all(f.resolved_at is not None for f in watch.faults),
            timeout=RECONCILE_SECONDS,
            what="every fault to be reconciled",
            interval=0.5,
        )
        figures.extend(f"{f.name}: reconciled in {f.seconds:.1f} s" for f in watch.faults)
        assert all(f.seconds is not None and f.seconds < RECONCILE_SECONDS for f in watch.faults)

        drain_started = time.monotonic()
        try:
            wait_for(lambda: all_ended(perfdb), timeout=DRAIN_SECONDS, what="every job to end")
        except AssertionError as error:
            raise AssertionError(f"{error}\nnot ended: {unfinished(perfdb, instance)}") from None
        figures.append(f"the rest of the queue drained in {time.monotonic() - drain_started:.1f} s")
        settled = {job.id: job for job in perfdb.queue.list_jobs()}

        # Nothing Running; every failure says why.
        with perfdb.engine.connect() as connection:
            assert (
                connection.exec_driver_sql(
                    "SELECT count(*) FROM job_steps WHERE state_id = 3"
                ).scalar_one()
                == 0
            )
        failed = {job_id: job for job_id, job in settled.items() if job.state == JobState.FAILED}
        assert all(job.comment for job in failed.values()), failed
        assert failed[cancel_requested].comment.startswith("canceled by chaos")  # type: ignore[union-attr]
        assert "was canceled before it claimed the job" in (failed[queued_canceled].comment or "")
        assert "run forged-run is unknown to Dagster" in (failed[handed].comment or "")
        assert (failed[unheld].comment or "").startswith("Running without a run id")
        figures.append(f"{len(failed)} of {JOBS} jobs Failed after the faults")

        # A requeue of every Failed job finishes them all.
        requeued_at = time.monotonic()
        for job_id in failed:
            perfdb.queue.queue_job(job_id, actor="chaos")
        wait_for(
            lambda: all(perfdb.queue.get_job(job_id).state == JobState.FINISHED for job_id in jobs),
            timeout=DRAIN_SECONDS,
            what="every requeued job to finish",
            interval=0.5,
        )
        figures.append(
            f"requeue of {len(failed)} jobs Finished in {time.monotonic() - requeued_at:.1f} s"
        )

        # Each (job, queue count) was claimed by at most one run.
        claims: Counter[tuple[int, str]] = Counter()
        for job_id in jobs:
            for entry in perfdb.queue.history(job_id):
                if entry.step_id is None and (entry.from_state, entry.to_state) == (
                    JobState.QUEUED,
                    JobState.RUNNING,
                ):
                    if entry.actor == "run:standalone":
                        continue  # the forged claim without a run
                    run = instance.get_run_by_id(entry.actor.removeprefix("run:"))
                    assert run is not None, entry
                    claims[job_id, run.tags[QUEUE_COUNT_TAG]] += 1
        assert claims and max(claims.values()) == 1, claims

    # Results equal a clean standalone run's, with no duplicate rows.
    actual = occurrence_rows(perfdb)
    assert len(actual) == len(set(actual))
    assert actual == expected
    print("\n" + "\n".join(["chaos figures:", *figures, f"{len(actual)} occurrences"]))
