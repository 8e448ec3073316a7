"""A run whose job was canceled ends Canceled, in one place: the step op that met the cancel.

That op's step start failed every step not started yet (`canceled, not run`) and finalised the
job in one transaction. The op then puts the job's outcome on the run page (an engine event
with the summary), tells Dagster the run is canceling, and stops the run:

- under the in-process executor, it raises `RunStopped` (a `KeyboardInterrupt`, which Dagster
  handles as an interruption): Dagster records the op as failed, starts no other op and ends
  the run Canceled, so the run page shows the finished steps green, this op red and the steps
  never started as not executed;
- elsewhere (step processes, Celery workers, `execute_in_process` that re-raises), it fails the
  op with `ExpectedFailure`; the other step ops still start and return at once (their steps are
  Failed already), and Dagster ends the run Canceled once they are done.

The console shows one line for the op and one for the run (`console.py`). What this reads of
Dagster beyond its public API (the step context's `raise_on_error`, the executor's name) fails
open to the second way.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import dagster as dg

from jobs_pipeline.orchestration.console import ExpectedFailure

logger = logging.getLogger(__name__)
IN_PROCESS_EXECUTOR = "in_process"


class RunStopped(KeyboardInterrupt):
    """The run stops starting ops: its job was canceled (not a Ctrl-C)."""


def _stops_here(context: dg.OpExecutionContext) -> bool:
    """Whether raising `RunStopped` ends this run cleanly: the in-process executor of a run
    that does not re-raise step errors to its caller."""
    try:
        executor = context.job_def.executor_def.name
        raises = context.get_step_execution_context().raise_on_error
    except Exception:
        return False
    return executor == IN_PROCESS_EXECUTOR and raises is False


def stop_canceled_run(
    context: dg.OpExecutionContext, message: str, metadata: dict[str, Any]
) -> NoReturn:
    """Ends the op (and under the in-process executor, the run) of a canceled job; `metadata`
    holds the step's and, when the job is final, the job's outcome."""
    try:
        from dagster._core.events import EngineEventData

        context.instance.report_engine_event(
            message,
            dagster_run=context.run,
            engine_event_data=EngineEventData(metadata=metadata),
            step_key=context.get_step_execution_context().step.key,
        )
    except Exception as error:  # the job is final already; the outcome is a courtesy
        logger.warning(f"run {context.run_id}: the job's outcome is not on its page: {error}")
    try:
        context.instance.report_run_canceling(context.run, message=message)
    except Exception as error:
        logger.warning(f"run {context.run_id} not marked canceling: {error}")
    if _stops_here(context):
        raise RunStopped(message)
    raise ExpectedFailure(description=message, metadata=metadata, allow_retries=False)
