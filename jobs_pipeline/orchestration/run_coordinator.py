"""The run queue, plus a shorter sensor loop so that a queued job starts within seconds.

Dagster's sensor daemon evaluates sensors in a loop that waits a fixed 5 s between passes
(`dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME` in dagster 1.13.27), whatever a sensor's
`minimum_interval_seconds` says: a job queued by the frontend waits 2.5 s on average before the
queue sensor even sees it. The daemon process loads the run coordinator from `dagster.yaml`, so
this subclass is where the loop can be set; elsewhere (webserver, CLI) the setting is unused.
`test_run_coordinator.py` fails if a Dagster upgrade moves the constant; the code itself fails
open: without the constant it warns and the daemon keeps Dagster's own loop.
"""

import logging
import warnings
from collections.abc import Mapping
from typing import Any, Self

from dagster import Field, IntSource
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._daemon import sensor as sensor_daemon
from dagster._serdes import ConfigurableClassData

from jobs_pipeline.orchestration import quiet_logs

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
