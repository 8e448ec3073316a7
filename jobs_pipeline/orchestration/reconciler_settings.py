"""Settings the reconciler shares with the command line (which must not import Dagster)."""

from __future__ import annotations

from jobs_pipeline.perfdb.heartbeat import seconds_from_env

QUEUED_WARNING_ENV = "JOBS_PIPELINE_QUEUED_WARNING_SECONDS"
DEFAULT_QUEUED_WARNING_SECONDS = 300.0


def queued_warning_seconds() -> float:
    """After how long a Queued job that no run has taken is worth a warning
    (`JOBS_PIPELINE_QUEUED_WARNING_SECONDS`, default 5 min)."""
    return seconds_from_env(QUEUED_WARNING_ENV, DEFAULT_QUEUED_WARNING_SECONDS)
