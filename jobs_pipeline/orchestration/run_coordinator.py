"""The run queue, plus a shorter sensor loop so that a queued job starts within seconds.

Dagster's sensor daemon evaluates sensors in a loop that waits a fixed 5 s between passes
(`dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME` in dagster 1.13.27), whatever a sensor's
`minimum_interval_seconds` says: a job queued by the frontend waits 2.5 s on average before the
queue sensor even sees it. The daemon process loads the run coordinator from `dagster.yaml`, so
this subclass is where the loop can be set; elsewhere (webserver, CLI) the setting is unused.
`test_run_coordinator.py` fails if a Dagster upgrade moves the constant; the code itself fails
open: without the constant it warns and the daemon keeps Dagster's own loop.

Every run launched through the queue passes here too, re-executions started in the UI among
them. Dagster gives a re-execution its parent's tags, `dagster/sensor_name` included, so the UI
would say the queue sensor launched it; the coordinator drops that tag from runs that have a
parent (the job's own tags stay). It writes Dagster's run tables the way `add_run_tags` does
(there is no call to remove a tag); on a storage it does not know, or on any error, it logs a
warning and the run keeps the tag.
"""

import logging
import warnings
from collections.abc import Mapping
from typing import Any, Self

from dagster import DagsterInstance, DagsterRun, Field, IntSource
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._daemon import sensor as sensor_daemon
from dagster._serdes import ConfigurableClassData

from jobs_pipeline.orchestration import quiet_logs
from jobs_pipeline.orchestration.tags import SENSOR_NAME_TAG

DAGSTER_SENSOR_LOOP_SECONDS = 5
logger = logging.getLogger(__name__)


class SensorLoopNotAdjusted(UserWarning):
    """The sensor daemon's loop could not be shortened; Dagster's default is used."""


def set_sensor_loop_seconds(seconds: int) -> bool:
    """Shortens the sensor daemon's loop; returns False (with a warning, Dagster's own loop
    staying in place) when this Dagster release no longer has the setting."""
    if seconds < 1:
        raise ValueError(f"sensor_loop_seconds must be at least 1, got {seconds}")
    if not isinstance(getattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME", None), int):
        message = (
            "dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME is gone in this Dagster release: "
            "sensor_loop_seconds is ignored and the daemon keeps Dagster's own loop"
        )
        logger.warning(message)
        warnings.warn(message, SensorLoopNotAdjusted, stacklevel=2)
        return False
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = seconds
    return True


class QueueRunCoordinator(QueuedRunCoordinator):
    """Dagster's queued run coordinator with one more setting, `sensor_loop_seconds`."""

    def __init__(self, sensor_loop_seconds: int = DAGSTER_SENSOR_LOOP_SECONDS, **kwargs: Any):
        super().__init__(**kwargs)
        self.sensor_loop_seconds = sensor_loop_seconds
        set_sensor_loop_seconds(sensor_loop_seconds)
        # Every Dagster process of the deployment builds this from dagster.yaml: the place to
        # keep the daemon's console readable.
        quiet_logs.install()

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        if run.parent_run_id is not None and SENSOR_NAME_TAG in run.tags:
            drop_run_tag(self._instance, run, SENSOR_NAME_TAG)
            context = SubmitRunContext(
                dagster_run=self._instance.get_run_by_id(run.run_id) or run,
                workspace=context.workspace,
            )
        return super().submit_run(context)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            **super().config_type(),  # type: ignore[dict-item]
            "sensor_loop_seconds": Field(
                IntSource,
                is_required=False,
                default_value=DAGSTER_SENSOR_LOOP_SECONDS,
                description="Seconds between the sensor daemon's evaluation passes.",
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        settings = dict(config_value)
        return cls(inst_data=inst_data, **settings)


def drop_run_tag(instance: DagsterInstance, run: DagsterRun, key: str) -> bool:
    """Removes one tag of a stored run (its body and its row in the tags table); False, with a
    warning, when the storage is not one of Dagster's SQL run storages or the write fails."""
    try:
        from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
        from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
        from dagster._serdes import serialize_value

        storage = instance.run_storage
        if not isinstance(storage, SqlRunStorage):
            raise TypeError(f"{type(storage).__name__} is not a SQL run storage")
        kept = {name: value for name, value in run.tags.items() if name != key}
        with storage.connect() as connection:
            connection.execute(
                RunsTable.update()
                .where(RunsTable.c.run_id == run.run_id)
                .values(run_body=serialize_value(run.with_tags(kept)))
            )
            connection.execute(
                RunTagsTable.delete().where(
                    RunTagsTable.c.run_id == run.run_id, RunTagsTable.c.key == key
                )
            )
    except Exception as error:
        logger.warning(f"run {run.run_id} keeps its tag {key}: {type(error).__name__}: {error}")
        return False
    return True
