"""Settings of the job types, each read from the environment here and nowhere else."""

from __future__ import annotations

import math
import os

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
