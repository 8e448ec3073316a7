"""Two patches to Dagster's step scheduler so that a run of 10,000 step ops costs linear time.

Dagster 1.13.27's `ActiveExecution` does, before every step it starts, work in proportion to the
steps of the run: `get_steps_to_execute` looks up and sorts every executable step to pick the
first (10,000 look-ups and a sort per step, for a 10,000-step job: quadratic, about half of the
run's time at that size), and `get_known_state` re-checks the type of every output the run has
produced so far. Both are internals of Dagster:

- `get_steps_to_execute` is given only a window of the executable steps (the first 64, or four
  times what the executor asks for) when every executable step has the same priority and the
  same pool, as all step ops of one job do. The steps are sorted by priority alone and Python's
  sort is stable, so the first of the window are the first of the whole list; a pool that
  refuses a slot to one of them refuses it to all, so looking further finds nothing either
  (Dagster would also queue a pending claim for each of the 10,000 steps then).
- `get_known_state` builds the same `KnownExecutionState` without re-checking values that
  Dagster itself produced.

They fail open: `install()` patches nothing unless the Dagster version and the source of the
patched functions are the ones this was written against (`test_dagster_scaling.py` says when an
upgrade changes them), and a window that cannot be computed falls back to Dagster's own code.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg

logger = logging.getLogger(__name__)

TESTED_DAGSTER_VERSION = "1.13.27"
# sha256 of `inspect.getsource` of each patched function, as shipped in that version.
TESTED_SOURCES = {
    "get_steps_to_execute": "682e584ce6cbf345",
    "get_known_state": "20d2e74e3b6f11e8",
}
WINDOW = 64

_installed = False
# Dagster's own functions, once patched (for tests that compare).
originals: dict[str, Callable[..., Any]] = {}


def source_digest(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def install() -> bool:
    """Patches `ActiveExecution` once per process; False (and nothing patched) when this Dagster
    is not the one the patches were checked against."""
    global _installed
    if _installed:
        return True
    try:
        from dagster._core.execution.plan import active
        from dagster._core.execution.plan.state import KnownExecutionState

        execution = active.ActiveExecution
        functions = {name: getattr(execution, name) for name in TESTED_SOURCES}
        if dg.__version__ != TESTED_DAGSTER_VERSION or any(
            source_digest(function) != TESTED_SOURCES[name] for name, function in functions.items()
        ):
            logger.info("Dagster %s: step scheduler left as it is", dg.__version__)
            return False
        tuple_new = KnownExecutionState.__mro__[1].__new__
        originals.update(functions)
        execution.get_steps_to_execute = _windowed(  # type: ignore[method-assign,assignment]
            functions["get_steps_to_execute"], active
        )
        execution.get_known_state = _unchecked_known_state(  # type: ignore[method-assign,assignment]
            KnownExecutionState, tuple_new
        )
    except Exception:  # an internal moved: Dagster's own code runs, only slower
        logger.warning("step scheduler patches not installed", exc_info=True)
        return False
    _installed = True
    return True


class _StepClasses(dict[str, tuple[float, Any]]):
    """(priority, pool) of each step key of one execution, computed once per key."""

    def __init__(self, execution: Any, active: Any) -> None:
        super().__init__()
        self._execution = execution
        self._active = active

    def __missing__(self, key: str) -> tuple[float, Any]:
        step = self._execution.get_step_by_key(key)
        value = (self._active._default_sort_key(step), self._active._pool_key_for_step(step))
        self[key] = value
        return value


def _window(execution: Any, limit: int | None, active: Any) -> int | None:
    """How many executable steps Dagster needs to look at, or None for all of them."""
    if limit is None or execution._tag_concurrency_limits:
        return None
    if execution._sort_key_fn is not active._default_sort_key:
        return None
    execution._update()
    window = max(WINDOW, 4 * limit)
    if len(execution._executable) <= window:
        return None
    classes = execution.__dict__.get("_jobs_pipeline_step_classes")
    if classes is None:
        classes = execution.__dict__["_jobs_pipeline_step_classes"] = _StepClasses(
            execution, active
        )
    if len(set(map(classes.__getitem__, execution._executable))) != 1:
        return None
    return window


def _windowed(original: Callable[..., Sequence[Any]], active: Any) -> Callable[..., Sequence[Any]]:
    @functools.wraps(original)
    def get_steps_to_execute(self: Any, limit: int | None = None) -> Sequence[Any]:
        try:
            window = _window(self, limit, active)
        except Exception:
            window = None
        if window is None:
            return original(self, limit)
        everything = self._executable
        self._executable = everything[:window]
        try:
            return original(self, limit)
        finally:
            # What the window did not start, then the rest, in their order.
            self._executable = self._executable + everything[window:]

    return get_steps_to_execute


def _unchecked_known_state(known_state: Any, tuple_new: Any) -> Callable[[Any], Any]:
    def get_known_state(self: Any) -> Any:
        # `ActiveExecution.get_known_state` of Dagster 1.13.27 without `KnownExecutionState`'s
        # type checks of every output produced so far.
        return tuple_new(
            known_state,
            self._retry_state.snapshot_attempts(),
            dict(self._completed_dynamic_outputs),
            self._plan.known_state.step_output_versions or {},
            self._step_outputs,
            self._plan.known_state.parent_state,
        )

    return get_known_state
