"""Settings of the job types, each read from the environment here and nowhere else."""

from __future__ import annotations

import math
import os
from datetime import timedelta

MIN_COVERAGE_ENV = "JOBS_PIPELINE_MIN_COVERAGE_PERCENT"
DEFAULT_MIN_COVERAGE_PERCENT = 50.0


def min_coverage_percent() -> float:
    """The data coverage, in percent of a step's period, below which a step that finishes says
    so in its comment: `JOBS_PIPELINE_MIN_COVERAGE_PERCENT`, default 50.

    Raises:
        ValueError: The variable is set to anything but a number from 0 to 100; the message
            names the variable.
    """
    text = os.environ.get(MIN_COVERAGE_ENV, "").strip()
    if not text:
        return DEFAULT_MIN_COVERAGE_PERCENT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 100:
        raise ValueError(f"{MIN_COVERAGE_ENV} must be a number from 0 to 100, got {text!r}")
    return value


STEP_PICTURES_ENV = "JOBS_PIPELINE_STEP_PICTURES"


def step_pictures() -> bool:
    """Whether steps draw a picture of what they looked at for Dagster's step page:
    `JOBS_PIPELINE_STEP_PICTURES=1` (on in the demo). Drawing costs a step about 0.1-0.2 s, more
    than the rest of a light step, so it is off by default."""
    return os.environ.get(STEP_PICTURES_ENV, "").strip().lower() in ("1", "true", "yes", "on")


LOOK_BACK_ENV = "JOBS_PIPELINE_ALARM_LOOK_BACK_HOURS"
DEFAULT_LOOK_BACK_HOURS = 168.0


def alarm_look_back() -> timedelta:
    """How far an alarm step reads before its period start (and after its period end) to find
    the whole of an episode that crosses it: `JOBS_PIPELINE_ALARM_LOOK_BACK_HOURS`, default 168
    (7 days). An episode longer than that is cut there, and the step's details say so.

    Raises:
        ValueError: The variable is set to anything but a positive number of hours; the
            message names the variable.
    """
    text = os.environ.get(LOOK_BACK_ENV, "").strip()
    if not text:
        return timedelta(hours=DEFAULT_LOOK_BACK_HOURS)
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not 0 < hours < 1e6:
        raise ValueError(f"{LOOK_BACK_ENV} must be a positive number of hours, got {text!r}")
    return timedelta(hours=hours)
