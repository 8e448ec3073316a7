"""The keys of the ops in a `perfdb_job` run: a step's op, the summary op, and the ops a run
started."""

from __future__ import annotations

from typing import Any

from jobs_pipeline.orchestration.mapping_keys import mapping_key
from jobs_pipeline.perfdb.records import Step

SUMMARY_OP = "summarise_job"


def op_key(step: Step) -> str:
    return f"run_step[{mapping_key(step)}]"


def started_step_keys(result: Any) -> list[str]:
    """The ops the run executed, sorted: Dagster does not promise an order among mapped ops."""
    return sorted(
        event.step_key for event in result.all_events if event.event_type_value == "STEP_START"
    )
