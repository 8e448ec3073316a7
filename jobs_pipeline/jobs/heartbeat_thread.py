"""The thread that beats for a run while it holds a job, so that a silent holder can be told dead.

Liveness comes from the owner writing, not from an observer noticing a death: whatever kills the
run's process (SIGKILL, a lost machine) stops this thread with it, and the reconciler fails the
job once the silence is longer than the configured limit. A hung step does not stop it: the
thread runs beside the step and keeps beating, so a beat says that the process lives, not that it
progresses. The maximum step runtime (`jobs/step_limits.py`, enforced by the reconciler) is what
catches a hang.

Used by the standalone `JobInstance.run()` and by Dagster's runs (`orchestration/heartbeats.py`);
the write each beat makes is `JobQueue.beat` (`perfdb/liveness.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from jobs_pipeline import settings
from jobs_pipeline.perfdb.queue import JobQueue

logger = logging.getLogger(__name__)


class HeartbeatThread:
    """Beats for (job, run) from a daemon thread until `stop()`, until the run no longer holds
    the job, or until `run_alive()` says the run is over (a run executed inside a longer-lived
    process). A failed beat (database restarting, or a SQLite file locked by a long import) is
    logged and tried again next time, for as long as it takes: once the database answers again
    the beat resumes, or finds that the reconciler has declared the run dead meanwhile (the run
    no longer holds the job) and stops."""

    def __init__(
        self,
        queue: JobQueue,
        job_id: int,
        run_id: str,
        interval: float | None = None,
        *,
        run_alive: Callable[[], bool] | None = None,
        wait_for_claim: bool = False,
    ) -> None:
        self.queue = queue
        self.job_id = job_id
        self.run_id = run_id
        self.interval = interval if interval is not None else settings.HEARTBEAT_SECONDS.read()
        # After this long without a beat the outage is worth a warning.
        self.warn_after = max(settings.HEARTBEAT_SILENCE_SECONDS.read(), self.interval)
        self.run_alive = run_alive
        # A run's orchestrator starts beating before its plan op claims the job: while the job
        # is Queued, the beat says that a run for it is alive (its plan op waiting for a worker).
        self.wait_for_claim = wait_for_claim
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._beat_until_stopped, name=f"heartbeat-job-{job_id}", daemon=True
        )

    def start(self) -> HeartbeatThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> HeartbeatThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _beat_until_stopped(self) -> None:
        last_beat = time.monotonic()
        claimed = False
        warned = False
        while not self._stopped.wait(self.interval):
            try:
                if self.run_alive is not None and not self.run_alive():
                    return
                if not self.queue.beat(self.job_id, self.run_id):
                    if self.wait_for_claim and not claimed and self.queue.beat_queued(self.job_id):
                        last_beat = time.monotonic()
                        continue  # not claimed yet, and still Queued
                    return  # the job is final or held by another run: nothing to keep alive
                claimed = True
                if warned:
                    logger.warning(
                        "heartbeat of job %s resumed after %.0f s",
                        self.job_id,
                        time.monotonic() - last_beat,
                    )
                    warned = False
                last_beat = time.monotonic()
            except Exception as error:
                silent_for = time.monotonic() - last_beat
                if silent_for > self.warn_after and not warned:
                    # Said once per outage; the beat goes on trying.
                    logger.warning(
                        "heartbeat of job %s failing for %.0f s, trying on: %s",
                        self.job_id,
                        silent_for,
                        error,
                    )
                    warned = True
                else:
                    logger.info("heartbeat of job %s failed, trying again: %s", self.job_id, error)
