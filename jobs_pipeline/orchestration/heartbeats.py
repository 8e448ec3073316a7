"""Heartbeats of a run. In the process that runs its ops: one per (database, run, job), started
by whichever op of the run comes first (the plan op, or a step op of a re-execution from failure
or in a step process). In the run worker of a run whose ops run elsewhere (multiprocess,
Celery): one for as long as the executor runs, so that a run whose steps wait (for a slot of the
`perfdb` pool, for a free worker) is not taken for dead between its ops. The thread itself is
`jobs/heartbeat_thread.py` (the standalone `JobInstance.run()` uses it too)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from jobs_pipeline.jobs.heartbeat_thread import HeartbeatThread
from jobs_pipeline.perfdb import PerfDB

_BEATING: dict[tuple[str, str, int], HeartbeatThread] = {}
_LOCK = threading.Lock()


def keep_alive(
    perfdb: PerfDB, run_id: str, job_id: int, instance: dg.DagsterInstance | None = None
) -> None:
    """Makes sure this process beats for the job while `run_id` holds it. The beat stops by
    itself once the job is final or held by another run, or once Dagster says the run ended
    (a run executed in a process that outlives it, such as `execute_in_process`)."""
    key = (perfdb.url, run_id, job_id)
    with _LOCK:
        beating = _BEATING.get(key)
        if beating is not None and beating.alive:
            return
        # Forget the beats of earlier runs: a long-lived process runs many runs.
        for stale in [k for k, beat in _BEATING.items() if not beat.alive]:
            del _BEATING[stale]
        _BEATING[key] = HeartbeatThread(
            perfdb.queue, job_id, run_id, run_alive=_run_alive(instance, run_id)
        ).start()


def _run_alive(instance: dg.DagsterInstance | None, run_id: str):  # type: ignore[no-untyped-def]
    if instance is None:
        return None

    def alive() -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and not run.is_finished

    return alive


@contextmanager
def orchestrator_heartbeat(perfdb: PerfDB, run_id: str, job_id: int) -> Iterator[None]:
    """Beats for the run's job while the run's executor runs in this process (from before its
    plan op claims the job until the executor returns)."""
    with HeartbeatThread(perfdb.queue, job_id, run_id, wait_for_claim=True):
        yield
