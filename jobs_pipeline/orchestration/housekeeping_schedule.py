"""The daily housekeeping run: a one-op Dagster job on a code-defined schedule, whose run page
shows what it removed. `JOBS_PIPELINE_HOUSEKEEPING_SCHEDULE` sets when (a cron line, UTC) or
turns it off (`off`)."""

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from jobs_pipeline import settings
from jobs_pipeline.orchestration.housekeeping import run_housekeeping
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.perfdb.housekeeping import Retention

HOUSEKEEPING_JOB_NAME = "perfdb_housekeeping"
HOUSEKEEPING_SCHEDULE_NAME = "perfdb_housekeeping_daily"


def housekeeping_cron() -> str | None:
    """The cron line of the daily run, or None when the setting turns it off.

    Raises:
        SettingError: The variable is neither a cron line nor `off`; the message names it.
    """
    cron = settings.HOUSEKEEPING_SCHEDULE.read()
    if cron is not None and not is_valid_cron_string(cron):
        raise settings.HOUSEKEEPING_SCHEDULE.error(cron)
    return cron


class HousekeepingConfig(dg.Config):
    dry_run: bool = False


@dg.op(description="Removes the ended jobs past their keep time, with their Dagster runs.")
def remove_expired_jobs(
    context: dg.OpExecutionContext, config: HousekeepingConfig, perfdb: PerfDBResource
) -> dg.Output[None]:
    retention = Retention.from_env()
    report = run_housekeeping(
        perfdb.get(), context.instance, retention, dry_run=config.dry_run, log=context.log
    )
    context.log.info(report.summary())
    metadata: dict[str, dg.RawMetadataValue] = {
        "summary": report.summary(),
        "dry run": report.dry_run,
        "keep Finished": report.keep_finished,
        "keep Failed": report.keep_failed,
        "jobs": report.jobs,
        "Finished jobs": report.finished_jobs,
        "Failed jobs": report.failed_jobs,
        "steps": report.steps,
        "history rows": report.history_rows,
        "Dagster runs": report.runs,
        "events": report.events,
        "jobs left for later": report.jobs_left,
        "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
    }
    return dg.Output(None, metadata=metadata)


@dg.job(
    name=HOUSEKEEPING_JOB_NAME,
    description="Housekeeping: removes ended jobs past their keep time "
    "(JOBS_PIPELINE_KEEP_FINISHED, JOBS_PIPELINE_KEEP_FAILED) with their steps, history "
    "and Dagster runs.",
)
def perfdb_housekeeping() -> None:
    remove_expired_jobs()


@dg.schedule(
    name=HOUSEKEEPING_SCHEDULE_NAME,
    job=perfdb_housekeeping,
    cron_schedule=housekeeping_cron() or settings.DEFAULT_HOUSEKEEPING_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Runs housekeeping daily; {settings.HOUSEKEEPING_SCHEDULE.name}=off turns it off.",
)
def perfdb_housekeeping_daily(context: dg.ScheduleEvaluationContext):
    if housekeeping_cron() is None:
        return dg.SkipReason(f"housekeeping is off ({settings.HOUSEKEEPING_SCHEDULE.name}=off)")
    return dg.RunRequest()
