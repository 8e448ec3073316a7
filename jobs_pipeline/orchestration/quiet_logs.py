"""Quiet by default: the daemon logs two INFO lines for every tick of every sensor ("Checking
for new runs for sensor: ...", "Sensor ... skipped: ..."), about two a second for our queue
sensor and reconciler, plus one per tick while a launched job waits for its run to claim it
("Skipping 1 run ... already completed with run keys"). They drown what matters. This filter
drops those lines for our own sensors only; launches, failures, anything at WARNING and above,
and a tick skipped because the performance database is unreachable (logged by Dagster at INFO
like any skip) still show, and a skipped tick still says why on the sensor's page in the UI.

`JOBS_PIPELINE_LOG_LEVEL=debug` (or `info`) brings the detail back: the filter is then not
installed and runs log every event on the console. The filter matches Dagster's wording of
1.13.27; a release that words it differently just logs them again (a test says so).
"""

from __future__ import annotations

import logging
import re

from jobs_pipeline import settings

SENSOR_DAEMON_LOGGER = "dagster.daemon.SensorDaemon"
OUR_SENSORS = ("perfdb_queue_sensor", "perfdb_reconciler")
# The skip reason of our sensors' ticks while the database is down: never routine.
DATABASE_UNREACHABLE = "performance database unreachable"
_KEPT_SKIPS = tuple(f"Sensor {name} skipped: {DATABASE_UNREACHABLE}" for name in OUR_SENSORS)
_ROUTINE_PREFIXES = tuple(
    prefix
    for name in OUR_SENSORS
    for prefix in (f"Checking for new runs for sensor: {name}", f"Sensor {name} skipped: ")
)
_ROUTINE_PATTERN = re.compile(
    r"^Skipping \d+ runs? for sensor (?:"
    + "|".join(map(re.escape, OUR_SENSORS))
    + r") already completed with run keys"
)


def log_level() -> str:
    """The console level of our processes and runs: WARNING-quiet unless asked otherwise."""
    return settings.LOG_LEVEL.read().upper()


def run_console_level() -> str:
    """The level of a run's console logger: step events stay in the UI unless DEBUG is asked."""
    level = log_level()
    return level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"


class RoutineSensorTicks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = str(record.getMessage())
        if message.startswith(_KEPT_SKIPS):
            return True
        return not (message.startswith(_ROUTINE_PREFIXES) or _ROUTINE_PATTERN.match(message))


_FILTER = RoutineSensorTicks()


def install() -> None:
    """Drops the routine sensor-tick lines from the daemon's log (idempotent)."""
    if log_level() in ("DEBUG", "INFO"):
        return
    logger = logging.getLogger(SENSOR_DAEMON_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
