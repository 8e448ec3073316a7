"""Run workers forked from a warm process instead of started cold.

Dagster's code server starts each run worker as a new Python process (multiprocessing `spawn`)
and its gRPC `StartRun` call, which the run queue's dequeue waits on, returns only once that
process has imported Dagster and built its instance; the worker then imports this code location
(pandas, SQLAlchemy, ...) before its first op. On this project's 2-core machine that is about
2 s of CPU and 3-7 s of wall time per run, several times a one-step job's own work
(`benchmarks/burst.py`).

`start_run_workers_from_forkserver()` makes the code server start its run workers from a
multiprocessing forkserver instead: a process that imported what a run needs once
(`run_worker_imports`) and forks a worker for each run. The forkserver starts with the first run
and lives as long as the code server; a code change restarts the code server, and with it the
forkserver, so workers never run stale code. Its environment is the code server's at the first
run.

`JOBS_PIPELINE_RUN_WORKERS=spawn` (in the environment of the daemon or `dagster dev`) keeps
Dagster's own start method.

The code server keeps its start method in `DagsterApiServer._mp_ctx`, a private attribute of
dagster 1.13.27 (`dagster._grpc.server`); `test_run_workers.py` fails when an upgrade changes it.
The code fails open: when the attribute or the forkserver start method is missing, it warns and
Dagster keeps starting workers with `spawn`.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
import warnings
from multiprocessing.context import BaseContext
from typing import Any

from jobs_pipeline import settings

logger = logging.getLogger(__name__)

PRELOAD_MODULE = "jobs_pipeline.orchestration.run_worker_imports"
SERVER_MODULE = "dagster._grpc.server"
# The private attribute of Dagster's code server that holds its multiprocessing context.
SERVER_CONTEXT_ATTRIBUTE = "_mp_ctx"

_LOCK = threading.Lock()
_context: BaseContext | None = None


class RunWorkersNotForked(UserWarning):
    """Run workers cannot be forked from a warm process; Dagster starts them with `spawn`."""


def forkserver_context() -> BaseContext:
    """The forkserver context whose server preloads `run_worker_imports` (set up once)."""
    global _context
    with _LOCK:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            # The forkserver is one per process; only the code server starts it, on its first run.
            context.set_forkserver_preload([PRELOAD_MODULE])
            _context = context
        return _context


class _ForkserverStart:
    """Data descriptor on Dagster's code server class: reads of the start-method attribute give
    the forkserver context, whatever the server's `__init__` stored (and stores again)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, server: Any, owner: type | None = None) -> Any:
        if server is None:
            return self
        return forkserver_context()

    def __set__(self, server: Any, value: Any) -> None:
        server.__dict__[SERVER_CONTEXT_ATTRIBUTE] = value  # Dagster's own choice, unused


def _not_forked(reason: str) -> bool:
    message = f"{reason}: run workers are started by Dagster's default (spawn), not forked"
    logger.warning(message)
    warnings.warn(message, RunWorkersNotForked, stacklevel=3)
    return False


def start_run_workers_from_forkserver() -> bool:
    """In a Dagster code server, makes its code servers fork their run workers from a warm
    forkserver. Idempotent; returns False, with a warning, when this Dagster release or this
    platform does not allow it (Dagster's spawn stays in place), or when
    `JOBS_PIPELINE_RUN_WORKERS` asks for `spawn`."""
    try:
        if settings.RUN_WORKERS.read() == "spawn":
            return False
    except settings.SettingError as error:
        return _not_forked(str(error))
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return _not_forked("this platform has no forkserver start method")
    # A code server imports Dagster's gRPC module before it loads this code location; a process
    # without it (a run worker, the forkserver, the command line) has no code server to change.
    server_module = sys.modules.get(SERVER_MODULE)
    if server_module is None:
        return False
    server_class = getattr(server_module, "DagsterApiServer", None)
    if not isinstance(server_class, type):
        return _not_forked(f"{SERVER_MODULE}.DagsterApiServer is gone")
    current = server_class.__dict__.get(SERVER_CONTEXT_ATTRIBUTE)
    if isinstance(current, _ForkserverStart):
        return True
    uses = getattr(getattr(server_class, "StartRun", None), "__code__", None)
    sets = getattr(server_class.__dict__.get("__init__"), "__code__", None)
    if (
        current is not None
        or uses is None
        or sets is None
        or SERVER_CONTEXT_ATTRIBUTE not in uses.co_names
        or SERVER_CONTEXT_ATTRIBUTE not in sets.co_names
    ):
        return _not_forked(
            f"DagsterApiServer no longer starts runs through {SERVER_CONTEXT_ATTRIBUTE}"
        )
    # A data descriptor wins over the instance attribute, so servers created before this call
    # (the one loading this code location right now) fork their workers too.
    descriptor = _ForkserverStart()
    descriptor.__set_name__(server_class, SERVER_CONTEXT_ATTRIBUTE)
    setattr(server_class, SERVER_CONTEXT_ATTRIBUTE, descriptor)
    return True
