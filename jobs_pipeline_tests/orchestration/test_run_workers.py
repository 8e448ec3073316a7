"""Run workers are forked from a warm forkserver in the code server (`run_workers.py`).

It replaces a private attribute of Dagster's code server; the source test below is the tripwire
for an upgrade, and the others check that the code fails open.
"""

from __future__ import annotations

import inspect
import multiprocessing
import multiprocessing.forkserver
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from dagster._grpc import server as grpc_server

from jobs_pipeline.orchestration import run_worker_imports, run_workers
from jobs_pipeline.orchestration.run_workers import (
    PRELOAD_MODULE,
    SERVER_CONTEXT_ATTRIBUTE,
    RunWorkersNotForked,
    forkserver_context,
    start_run_workers_from_forkserver,
)
from jobs_pipeline.settings import RUN_WORKERS

SERVER = grpc_server.DagsterApiServer


@pytest.fixture(autouse=True)
def dagster_as_shipped(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from Dagster's own code server class and leaves it so."""
    monkeypatch.delenv(RUN_WORKERS.name, raising=False)
    forkserver = multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]
    preload = forkserver._preload_modules
    context = run_workers._context
    # This process may have loaded the code location after Dagster's gRPC module already.
    installed = SERVER.__dict__.get(SERVER_CONTEXT_ATTRIBUTE)
    if installed is not None:
        delattr(SERVER, SERVER_CONTEXT_ATTRIBUTE)
    run_workers._context = None
    yield
    if SERVER_CONTEXT_ATTRIBUTE in SERVER.__dict__:
        delattr(SERVER, SERVER_CONTEXT_ATTRIBUTE)
    if installed is not None:
        setattr(SERVER, SERVER_CONTEXT_ATTRIBUTE, installed)
    run_workers._context = context
    forkserver._preload_modules = preload


def bare_server() -> grpc_server.DagsterApiServer:
    """A code server object without its gRPC machinery, its start method set as Dagster does."""
    server = object.__new__(SERVER)
    server._mp_ctx = multiprocessing.get_context("spawn")
    return server


def test_dagster_still_starts_run_workers_through_the_attribute_it_replaces() -> None:
    # On failure: find where DagsterApiServer.StartRun gets its process from now, and adapt
    # run_workers.py (the code meanwhile warns and keeps Dagster's spawn).
    init = inspect.getsource(SERVER.__init__)
    start_run = inspect.getsource(SERVER.StartRun)
    assert 'self._mp_ctx = multiprocessing.get_context("spawn")' in init
    assert "self._mp_ctx.Process(" in start_run
    assert "target=start_run_in_subprocess" in start_run
    assert "self._mp_ctx.Queue()" in start_run
    assert "self._mp_ctx.Event()" in start_run


def test_in_a_code_server_run_workers_come_from_the_forkserver() -> None:
    before = bare_server()
    assert start_run_workers_from_forkserver()

    context = forkserver_context()
    assert context.get_start_method() == "forkserver"
    # Servers created before (the one loading the code location) and after both fork.
    assert before._mp_ctx is context
    after = bare_server()
    assert after._mp_ctx is context
    assert after.__dict__[SERVER_CONTEXT_ATTRIBUTE].get_start_method() == "spawn"
    forkserver = multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]
    assert forkserver._preload_modules == [PRELOAD_MODULE]
    # Idempotent.
    assert start_run_workers_from_forkserver()
    assert bare_server()._mp_ctx is context


def test_outside_a_code_server_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, run_workers.SERVER_MODULE)
    assert not start_run_workers_from_forkserver()
    assert SERVER_CONTEXT_ATTRIBUTE not in SERVER.__dict__


def test_spawn_can_be_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_WORKERS.name, "spawn")
    assert not start_run_workers_from_forkserver()
    assert bare_server()._mp_ctx.get_start_method() == "spawn"


def test_an_unknown_setting_warns_and_keeps_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_WORKERS.name, "fork")
    named = "JOBS_PIPELINE_RUN_WORKERS must be `forkserver` or `spawn`, got 'fork'"
    with pytest.warns(RunWorkersNotForked, match=named):
        assert not start_run_workers_from_forkserver()
    assert bare_server()._mp_ctx.get_start_method() == "spawn"


def test_a_dagster_that_starts_runs_otherwise_gets_a_warning_and_its_own_spawn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def start_run(self: object, request: object, context: object) -> None:
        return None

    monkeypatch.setattr(SERVER, "StartRun", start_run)
    with pytest.warns(RunWorkersNotForked, match="no longer starts runs through _mp_ctx"):
        assert not start_run_workers_from_forkserver()
    assert SERVER_CONTEXT_ATTRIBUTE not in SERVER.__dict__
    assert bare_server()._mp_ctx.get_start_method() == "spawn"


def test_a_module_that_fails_to_preload_is_left_to_the_worker(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        run_worker_imports, "RUN_WORKER_MODULES", ("json", "jobs_pipeline.no_such_module")
    )
    assert run_worker_imports.preload() == ["jobs_pipeline.no_such_module"]
    assert "jobs_pipeline.no_such_module not imported" in caplog.text


# A fresh interpreter set up like a code server forks a process from the forkserver: the child
# finds the code location imported already, and is a child of the forkserver, not of its parent.
FORK_PROBE = textwrap.dedent(
    """
    import os, sys
    import dagster._grpc.server
    from jobs_pipeline.orchestration.run_workers import (
        forkserver_context, start_run_workers_from_forkserver)

    REPORT = (
        "import os, sys; queue.put((os.getppid(), "
        "[m in sys.modules for m in ('jobs_pipeline.definitions', 'matplotlib.figure')]))"
    )

    if __name__ == "__main__":
        assert start_run_workers_from_forkserver()
        context = forkserver_context()
        queue = context.Queue()
        process = context.Process(target=exec, args=(REPORT, {"queue": queue}))
        process.start()
        parent, preloaded = queue.get(timeout=120)
        process.join(30)
        print(process.exitcode, parent != os.getpid(), *preloaded)
    """
)


def test_a_forked_run_worker_starts_with_the_code_location_imported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    probe = tmp_path / "fork_probe.py"
    probe.write_text(FORK_PROBE)
    result = subprocess.run(
        [sys.executable, str(probe)], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True", "True", "True"]
