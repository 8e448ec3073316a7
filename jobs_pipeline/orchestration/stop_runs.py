"""Stopping a job's Dagster run: one that has not started is canceled (it never starts), one
that has is terminated (run monitoring's cancel timeout ends a worker that does not stop)."""

from __future__ import annotations

import dagster as dg
from dagster import DagsterRunStatus


def stop_run(instance: dg.DagsterInstance, run: dg.DagsterRun, reason: str) -> None:
    if run.is_finished:
        return
    if run.status in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED):
        instance.report_run_canceled(run, reason)
    else:
        instance.run_coordinator.cancel_run(run.run_id)


def stop_runs_of_queueing(
    instance: dg.DagsterInstance, job_id: int, queue_count: int, reason: str
) -> list[str]:
    """Stops the runs launched for one queueing of a job (its `queue_count`); returns their ids."""
    from jobs_pipeline.orchestration.tags import JOB_ID_TAG, QUEUE_COUNT_TAG

    records = instance.get_run_records(
        dg.RunsFilter(tags={JOB_ID_TAG: str(job_id), QUEUE_COUNT_TAG: str(queue_count)})
    )
    stopped = []
    for record in records:
        run = record.dagster_run
        if not run.is_finished:
            stop_run(instance, run, reason)
            stopped.append(run.run_id)
    return stopped
