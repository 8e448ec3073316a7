"""Fixtures of the orchestration tests: the resource `perfdb_job` runs with on the test's database,
a throwaway Dagster instance, and the `celery` profile's deployment (celery_deployment.py). The
fleet the tests seed is in alarm_fleet.py."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from jobs_pipeline.orchestration.resources import PerfDBResource, shared_perfdb
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.settings import CELERY_BROKER, CELERY_QUEUE, EXECUTION
from jobs_pipeline_tests.orchestration.alarm_fleet import seed_fleet
from jobs_pipeline_tests.orchestration.celery_deployment import (
    BROKER,
    STEP_SECONDS,
    CeleryDeployment,
    broker_answers,
)
from jobs_pipeline_tests.orchestration.processes import (
    PACE_ENV,
    PACED_ALARM_CALC_SPEC,
    PID_DIR_ENV,
    daemon_deployment,
    scratch_dagster_environment,
    stop_process_group,
)


@pytest.fixture
def perfdb_resource(perfdb_url: str) -> Iterator[PerfDBResource]:
    """The resource on this test's database; its process-wide engine is closed afterwards, before
    the database is dropped."""
    yield PerfDBResource(url=perfdb_url)
    shared_perfdb(perfdb_url).dispose()


@pytest.fixture
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """A persistent Dagster instance in a temporary home (re-execution needs stored runs)."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def deployment(pg_perfdb_url: str, tmp_path: Path) -> Iterator[CeleryDeployment]:
    """The daemon with every job type on the `celery` profile, and no worker yet."""
    assert broker_answers(), f"no Celery broker answers at {BROKER} (.ci/run starts RabbitMQ)"
    perfdb = PerfDB.connect(pg_perfdb_url)
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        seed_fleet(perfdb)
        perfdb.queue.upsert_job_types([PACED_ALARM_CALC_SPEC])
        (tmp_path / "pids").mkdir()
        settings = {
            EXECUTION.name: "celery",
            CELERY_BROKER.name: BROKER,
            CELERY_QUEUE.name: f"jobs_pipeline_test_{uuid.uuid4().hex[:12]}",
            PID_DIR_ENV: str(tmp_path / "pids"),
            PACE_ENV: str(STEP_SECONDS),
        }
        with (
            scratch_dagster_environment(pg_perfdb_url, tmp_path, settings) as env,
            daemon_deployment(env, tmp_path) as running,
        ):
            deployment = CeleryDeployment(
                perfdb=perfdb,
                env=env,
                instance=running.instance,
                daemon=running.daemon,
                directory=tmp_path,
                workers=workers,
            )
            try:
                yield deployment
            finally:
                for worker in workers.values():
                    stop_process_group(worker, timeout=20)
    finally:
        perfdb.dispose()
