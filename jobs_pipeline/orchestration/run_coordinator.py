"""The run queue, plus a shorter sensor loop so that a queued job starts within seconds.

Dagster's sensor daemon evaluates sensors in a loop that waits a fixed 5 s between passes
(`dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME` in dagster 1.13.27), whatever a sensor's
`minimum_interval_seconds` says: a job queued by the frontend waits 2.5 s on average before the
queue sensor even sees it. The daemon process loads the run coordinator from `dagster.yaml`, so
this subclass is where the loop can be set; elsewhere (webserver, CLI) the setting is unused.
`test_run_coordinator.py` fails if a Dagster upgrade moves the constant.
"""

from collections.abc import Mapping
from typing import Any, Self

from dagster import Field, IntSource
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._daemon import sensor as sensor_daemon
from dagster._serdes import ConfigurableClassData

DAGSTER_SENSOR_LOOP_SECONDS = 5


def set_sensor_loop_seconds(seconds: int) -> None:
    if not isinstance(getattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME", None), int):
        raise RuntimeError(
            "dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME is gone: this Dagster release is not "
            "the one jobs_pipeline's run coordinator was written for"
        )
    if seconds < 1:
        raise ValueError(f"sensor_loop_seconds must be at least 1, got {seconds}")
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = seconds


class QueueRunCoordinator(QueuedRunCoordinator):
    """Dagster's queued run coordinator with one more setting, `sensor_loop_seconds`."""

    def __init__(self, sensor_loop_seconds: int = DAGSTER_SENSOR_LOOP_SECONDS, **kwargs: Any):
        super().__init__(**kwargs)
        self.sensor_loop_seconds = sensor_loop_seconds
        set_sensor_loop_seconds(sensor_loop_seconds)

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
