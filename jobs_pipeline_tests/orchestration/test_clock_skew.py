"""A run worker whose clock is ten minutes behind: its job is not taken for silent, and every
timestamp it causes comes from the database's clock.

The run worker is a real `dagster job execute` process started under libfaketime (`FAKETIME`),
so `time.time()` and `datetime.now()` in it are off by ten minutes, as on a Kubernetes node whose
clock drifted. The reconciler sweeps in this process, on the true clock, with a silence limit
far shorter than the skew. PostgreSQL only: SQLite's clock is that of whichever process runs
the statement, so an embedded database on one machine has no skew to survive.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobs_pipeline.orchestration.reconciler import Cursor, Reconciler
from jobs_pipeline.orchestration.sensors import run_tags
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import HEARTBEAT_SECONDS
from jobs_pipeline_tests.orchestration.perfdb_job_config import plan_config
from jobs_pipeline_tests.orchestration.processes import (
    INTERPRETER_BIN,
    REPO_ROOT,
    SLOW_STEPS_SPEC,
    add_slow_steps_type,
    instance_for_environment,
    scratch_dagster_environment,
    stop_process_group,
)

pytestmark = pytest.mark.slow

LIBFAKETIME = next(
    Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"), Path("/usr/lib/faketime/missing")
)
# With only the wall clock faked, this libfaketime makes `time.sleep` fail with EINVAL (its
# absolute monotonic deadline is shifted); timed waits on events work, so the worker sleeps so.
SLEEP_SHIM = """
import threading
import time


def _sleep(seconds):
    if seconds > 0:
        threading.Event().wait(seconds)


time.sleep = _sleep
"""
SKEW_SECONDS = -600
OBJECT = "SKEW-01"
SILENCE_SECONDS = 20.0
RUN_TIMEOUT = 240.0


@pytest.fixture
def skewed_perfdb(pg_perfdb_url: str) -> Iterator[PerfDB]:
    perfdb = PerfDB.connect(pg_perfdb_url)
    add_slow_steps_type(perfdb, OBJECT)
    yield perfdb
    perfdb.dispose()


def skewed(env: dict[str, str], directory: Path) -> dict[str, str]:
    """`env` for a process whose wall clock is `SKEW_SECONDS` off (its monotonic clock is not,
    so that its sleeps and timeouts still last what they should)."""
    assert LIBFAKETIME.exists(), "libfaketime is missing: scripts/_setup.sh installs it as root"
    site = directory / "skewed_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLEEP_SHIM)
    return {
        **env,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": f"{SKEW_SECONDS:+d}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PYTHONPATH": f"{site}:{env.get('PYTHONPATH', '')}",
    }


def database_time(perfdb: PerfDB) -> datetime:
    with perfdb.engine.connect() as connection:
        value = connection.execute(sa.select(sa.func.now())).scalar_one()
    assert isinstance(value, datetime)
    return value


def test_a_run_worker_ten_minutes_behind_keeps_its_job_and_writes_database_time(
    skewed_perfdb: PerfDB, pg_perfdb_url: str, tmp_path: Path
) -> None:
    perfdb = skewed_perfdb
    job = perfdb.queue.create_job(
        SLOW_STEPS_SPEC.name,
        {"object": OBJECT, "seconds": [3, 3, 3], "pid_file": str(tmp_path / "pid")},
        queue=True,
    )
    config = tmp_path / "run_config.json"
    config.write_text(json.dumps(plan_config(job.id)))
    with scratch_dagster_environment(pg_perfdb_url, tmp_path, {HEARTBEAT_SECONDS.name: "1"}) as env:
        worker_env = skewed(env, tmp_path)
        clock = subprocess.run(
            [str(INTERPRETER_BIN / "python"), "-c", "import time; print(time.time())"],
            env=worker_env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert float(clock.stdout) - time.time() == pytest.approx(SKEW_SECONDS, abs=30)
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [
                str(INTERPRETER_BIN / "dagster"),
                "job",
                "execute",
                "-m",
                "jobs_pipeline_tests.orchestration.processes",
                "-a",
                "slow_steps_definitions",
                "-j",
                "perfdb_job",
                "-c",
                str(config),
                "--tags",
                json.dumps(run_tags(job)),
            ],
            env=worker_env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        sweeps = 0
        try:
            with instance_for_environment(env) as instance:
                cursor = Cursor()
                deadline = time.monotonic() + RUN_TIMEOUT
                while worker.poll() is None and time.monotonic() < deadline:
                    if perfdb.queue.get_job(job.id).state == JobState.RUNNING:
                        Reconciler(perfdb, instance, silence_seconds=SILENCE_SECONDS).sweep(cursor)
                        sweeps += 1
                    time.sleep(1.0)
        finally:
            stop_process_group(worker)
            log.close()
        output = (tmp_path / "worker.log").read_text(errors="replace")
        assert worker.returncode == 0, output[-3000:]
    assert sweeps >= 3, "the reconciler never saw the job Running"

    now = database_time(perfdb)
    finished = perfdb.queue.get_job(job.id)
    assert (finished.state, finished.comment) == (JobState.FINISHED, None)
    steps = perfdb.queue.get_steps(job.id)
    stamps = [finished.created, finished.started, finished.finished, finished.heartbeat]
    stamps += [step.started for step in steps] + [step.finished for step in steps]
    stamps += [entry.changed_at for entry in perfdb.queue.history(job.id)]
    for stamp in stamps:
        assert stamp is not None
        # Written by the database: minutes of the test at most, never the worker's ten.
        assert 0 <= (now - stamp).total_seconds() < RUN_TIMEOUT, (stamp, now)
