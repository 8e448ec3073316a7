"""What a step reports about its data, as `job_steps.details` and as Dagster step metadata."""

from __future__ import annotations

import math
from typing import Any, Final

from jobs_pipeline.calc import DataQuality

DATA_QUALITY_DETAILS: Final = (
    "samples_read",
    "nan_samples",
    "gaps",
    "gap_seconds",
    "coverage_percent",
)
"""The data-quality figures of a step's details, as `data_quality_details` names them."""

SHOWN_DETAILS: Final = (*DATA_QUALITY_DETAILS, "occurrences_written")
"""The details that the Dagster step ops show as metadata when a step reports them."""


def data_quality_details(quality: DataQuality) -> dict[str, Any]:
    """The data-quality figures of a step: counts, gaps (count and total seconds) and the
    coverage in percent, rounded down to 0.01 like the comment (99.999 % is not a full
    period)."""
    return {
        "samples_read": quality.samples,
        "nan_samples": quality.nan_samples,
        "gaps": quality.gaps,
        "gap_seconds": quality.gap_duration.total_seconds(),
        "coverage_percent": math.floor(quality.coverage_percent * 100) / 100,
    }
