"""The deployment of the `celery` execution profile in a test (the `deployment` fixture in
conftest.py): the broker, the daemon, the Dagster instance and database, and its workers."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import CELERY_BROKER, CELERY_QUEUE
from jobs_pipeline_tests.orchestration.alarm_fleet import ALARM_IDS, ALL_OBJECTS, PERIOD
from jobs_pipeline_tests.orchestration.processes import (
    PACED_ALARM_CALC_SPEC,
    PID_DIR_ENV,
    Daemon,
    finished_run,
    job_in_state,
    wait_for,
)
from jobs_pipeline_tests.orchestration.scratch_deployment import (
    celery_worker_ready,
    start_celery_worker,
)

BROKER = os.environ.get("JOBS_PIPELINE_TEST_CELERY_BROKER") or CELERY_BROKER.default
STEP_SECONDS = 2.5  # long enough to kill a worker in the middle of a step
TIMEOUT = 180.0


@dataclass
class CeleryDeployment:
    perfdb: PerfDB
    env: dict[str, str]
    instance: dg.DagsterInstance
    daemon: Daemon
    directory: Path
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def pid_dir(self) -> Path:
        return Path(self.env[PID_DIR_ENV])

    def node_name(self, name: str) -> str:
        """The worker's Celery node name: unique to this deployment, since a broker refuses a
        second worker of the same name (the tests of another process may run beside these)."""
        return f"{name}-{self.env[CELERY_QUEUE.name].rsplit('_', 1)[-1]}"

    def start_worker(self, name: str) -> None:
        """`scripts/celery-worker NAME --concurrency=1`, ready to take tasks."""
        log_path = self.directory / f"{name}.log"
        self.workers[name] = start_celery_worker(self.node_name(name), self.env, log_path)
        wait_for(
            lambda: celery_worker_ready(log_path),
            timeout=90,
            what=f"celery worker {name} to be ready:\n{log_path}",
        )

    def queue_paced_job(self) -> int:
        job = self.perfdb.queue.create_job(
            PACED_ALARM_CALC_SPEC.name,
            {"object_names": list(ALL_OBJECTS), "alarm_ids": list(ALARM_IDS), **PERIOD},
            description="alarms on celery",
            queue=True,
        )
        return job.id

    def wait_until_final(self, job_id: int) -> Any:
        job = wait_for(
            job_in_state(self.perfdb, job_id, JobState.FINISHED, JobState.FAILED),
            timeout=TIMEOUT,
            what=f"job {job_id} to end",
            daemon=self.daemon,
        )
        wait_for(
            finished_run(self.instance, job.run_id),
            timeout=60,
            what=f"run {job.run_id} to end",
            daemon=self.daemon,
        )
        return job


def broker_answers() -> bool:
    parts = urlsplit(BROKER)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False
