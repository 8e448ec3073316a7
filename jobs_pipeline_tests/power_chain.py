"""A catalog of chained derived features for tests and benchmarks of dependent steps: measured
`voltage` and `current` per object, derived `power = voltage * current` and `doubled = power * 2`
(whose step depends on the object's `power` step)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jobs_pipeline.perfdb import PerfDB


def seed_power_chain(
    perfdb: PerfDB,
    objects: list[str],
    samples: int,
    *,
    sampling_period: str = "1min",
    without_data: str | None = None,
) -> dict[str, str]:
    """Stores `samples` random values of `voltage` and `current` for each object from
    2024-01-01 (an object `without_data` exists but has none) and defines `power` and `doubled`.
    Returns the period that covers every sample, as a job's `start` and `end` parameters."""
    step = pd.Timedelta(sampling_period)
    stamps = pd.date_range("2024-01-01", periods=samples, freq=step, tz="UTC")
    rng = np.random.default_rng(5)
    parts = [
        pd.DataFrame(
            {
                "object": name,
                "feature": feature,
                "timestamp": stamps,
                "value": rng.uniform(1, 10, samples),
            }
        )
        for name in objects
        if name != without_data
        for feature in ("voltage", "current")
    ]
    perfdb.values.import_frame(pd.concat(parts, ignore_index=True), sampling_period=step)
    if without_data:
        perfdb.catalog.ensure_objects([without_data])
    perfdb.derived.define("power", "voltage * current")
    perfdb.derived.define("doubled", "power * 2")
    end = stamps[-1] + step
    return {"start": "2024-01-01 00:00:00", "end": end.strftime("%Y-%m-%d %H:%M:%S")}
