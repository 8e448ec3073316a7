"""A scratch deployment for the tests and the benchmarks: a Dagster home, the environment of its
processes, and the processes themselves (`dagster-daemon`, `dagster-webserver`, Celery workers),
each made for one test or benchmark and removed afterwards.

Executables are taken next to the running interpreter, so that this works from any environment
with the project installed. Nothing here imports pytest: the benchmarks use it too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import yaml

from jobs_pipeline.settings import PERFDB_URL
from jobs_pipeline_tests.pg_cluster import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# The executables of the running environment (dagster, dagster-daemon, dagster-webserver,
# dagster-celery, jobs-pipeline): not resolved, a virtual environment's python is a link out of it.
INTERPRETER_BIN = Path(sys.executable).parent
PRODUCTION_WORKSPACE = REPO_ROOT / "workspace.yaml"
INSTANCE_CONFIG = REPO_ROOT / "dagster.yaml"
CELERY_WORKER = REPO_ROOT / "scripts" / "celery-worker"
DAGSTER_PG_URL_ENV = "DAGSTER_PG_URL"
WEBSERVER_TIMEOUT = 180.0

T = TypeVar("T")


# --- Dagster home and environment --------------------------------------------------------------


def make_dagster_home(
    directory: Path,
    source: Path = INSTANCE_CONFIG,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """A Dagster home holding a copy of `source` (the repository's `dagster.yaml`), changed by
    `edit` if given."""
    directory.mkdir(parents=True, exist_ok=True)
    if edit is None:
        shutil.copyfile(source, directory / "dagster.yaml")
    else:
        config = yaml.safe_load(source.read_text())
        edit(config)
        (directory / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


def dagster_environment(
    dagster_home: Path, perfdb_url: str, dagster_pg_url: str | None = None
) -> dict[str, str]:
    """The environment of a Dagster process: its home, its storage and the performance database.
    Without `dagster_pg_url` the instance keeps its storage in SQLite files under the home."""
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), PERFDB_URL.name: perfdb_url}
    env.pop(DAGSTER_PG_URL_ENV, None)
    if dagster_pg_url:
        env[DAGSTER_PG_URL_ENV] = dagster_pg_url
    # A test's code location imports this repository's tests package in every process.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@contextmanager
def environment_variables(values: Mapping[str, str | None]) -> Iterator[None]:
    """This process's environment with `values` set (None: unset), restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def instance_for_environment(env: Mapping[str, str]) -> Iterator[dg.DagsterInstance]:
    """An instance on the same storage as the processes started with `env`. The storage reads
    its URL from the environment when the instance is built, so it is set just for that."""
    names = ("DAGSTER_HOME", DAGSTER_PG_URL_ENV)
    with environment_variables({name: env.get(name) for name in names}):
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    with instance:
        yield instance


# --- processes ---------------------------------------------------------------------------------


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM to the process group a `start_new_session` child leads, SIGKILL to what is left
    after `timeout` seconds."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    # Children may outlive the leader (a code server still shutting down).
    deadline = time.monotonic() + timeout
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start_in_session(
    command: list[str], env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """`command` from the repository root, the leader of a new process group, its output (and
    that of its children) in `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            env=dict(env),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class Daemon:
    """A `dagster-daemon run` process, the leader of its own process group."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the whole group (daemon, code server, run workers), SIGKILL if it hangs."""
        stop_process_group(self.process, timeout)


@contextmanager
def running_daemon(workspace: Path, env: Mapping[str, str], log_path: Path) -> Iterator[Daemon]:
    """`dagster-daemon run -w workspace`, stopped with its process group whatever happens."""
    command = [str(INTERPRETER_BIN / "dagster-daemon"), "run", "-w", str(workspace)]
    daemon = Daemon(process=start_in_session(command, env, log_path), log_path=log_path)
    try:
        yield daemon
    finally:
        daemon.stop()


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    daemon: Daemon | None = None,
) -> T:
    """Polls until `condition()` returns something truthy and returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if daemon is not None and daemon.process.poll() is not None:
            raise AssertionError(
                f"the daemon exited while waiting for {what}:\n{daemon.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"\ndaemon log:\n{daemon.log_tail()}" if daemon is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        time.sleep(interval)


def finished_run_record(instance: dg.DagsterInstance, run_id: str) -> Callable[[], Any]:
    """A condition for `wait_for`: the run's record (its creation and start times with it) once
    the run has ended."""

    def check() -> Any:
        record = instance.get_run_record_by_id(run_id)
        return record if record is not None and record.dagster_run.is_finished else None

    return check


def finished_run(instance: dg.DagsterInstance, run_id: str) -> Callable[[], Any]:
    """A condition for `wait_for`: the run once it has ended."""
    finished_record = finished_run_record(instance, run_id)

    def check() -> Any:
        record = finished_record()
        return record.dagster_run if record is not None else None

    return check


@contextmanager
def running_webserver(workspace: Path, env: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """`dagster-webserver -w workspace` on a free local port, answering: yields its URL; stopped
    with its process group whatever happens."""
    port = free_port()
    command = [str(INTERPRETER_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    process = start_in_session([*command, "-w", str(workspace)], env, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WEBSERVER_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dagster-webserver did not start; see {log_path}") from None
                time.sleep(0.5)
        yield url
    finally:
        stop_process_group(process)


def start_celery_worker(
    node_name: str, env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """`scripts/celery-worker NODE --concurrency=1` with the dagster-celery of the running
    environment, in a process group of its own; `celery_worker_ready` says when it takes tasks."""
    command = [str(CELERY_WORKER), node_name, "--concurrency=1"]
    return start_in_session(command, {**env, "JOBS_PIPELINE_BIN": str(INTERPRETER_BIN)}, log_path)


def celery_worker_ready(log_path: Path) -> bool:
    return " ready." in log_path.read_text(errors="replace")
