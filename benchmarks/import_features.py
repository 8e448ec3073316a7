"""Bulk import of 1,000,000 feature values into SQLite and PostgreSQL.

20 objects x 5 features x 10,000 ten-minute samples, generated with numpy, go through
`PerfDB.values.import_frame` (a DataFrame) and `PerfDB.values.import_csv` (a CSV file written
first, so parsing is part of the figure), each into a fresh database; each load is then repeated
to measure the idempotent re-import (an upsert that changes nothing). Target on PostgreSQL:
>= 100,000 rows/s for the first import.

    .venv/bin/python benchmarks/import_features.py [--backend sqlite|postgresql|both]

`JOBS_PIPELINE_BENCH_PG_URL` is an admin URL of a PostgreSQL server on which the benchmark
creates and drops a scratch database (default: the local server as root).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from scratch import scratch_postgresql  # benchmarks/scratch.py

from jobs_pipeline.jobs import upgrade_database
from jobs_pipeline.perfdb import PerfDB

OBJECTS = 20
FEATURES = 5
SAMPLES = 10_000
ROWS = OBJECTS * FEATURES * SAMPLES
TARGET_PG_ROWS_PER_SECOND = 100_000


def generate_values(seed: int = 0) -> pd.DataFrame:
    """One row per (object, feature, timestamp); about 1% of the values are NaN (no data)."""
    rng = np.random.default_rng(seed)
    objects = np.array([f"BENCH-{i:02d}" for i in range(1, OBJECTS + 1)], dtype=object)
    features = np.array([f"feature_{i}" for i in range(1, FEATURES + 1)], dtype=object)
    times = pd.date_range("2024-01-01", periods=SAMPLES, freq="10min", tz="UTC")
    values = rng.normal(1000.0, 250.0, ROWS)
    values[rng.random(ROWS) < 0.01] = np.nan
    return pd.DataFrame(
        {
            "object": np.repeat(objects, FEATURES * SAMPLES),
            "feature": np.tile(np.repeat(features, SAMPLES), OBJECTS),
            "timestamp": np.tile(times, OBJECTS * FEATURES),
            "value": values,
        }
    )


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    path = directory / f"bench_{uuid.uuid4().hex[:8]}.sqlite"
    yield f"sqlite:///{path}"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def timed(load: Callable[[PerfDB], object], perfdb: PerfDB) -> float:
    started = time.perf_counter()
    load(perfdb)
    return time.perf_counter() - started


def report(label: str, seconds: float) -> float:
    rate = ROWS / seconds
    print(f"  {label:<32} {seconds:7.2f} s  {rate:>11,.0f} rows/s")
    return rate


def bench_backend(
    backend: str, frame: pd.DataFrame, csv_path: Path, scratch: Path
) -> dict[str, float]:
    print(f"{backend}:")
    rates: dict[str, float] = {}
    for path, load in (
        ("import_frame", lambda perfdb: perfdb.values.import_frame(frame)),
        ("import_csv", lambda perfdb: perfdb.values.import_csv(csv_path)),
    ):
        database = sqlite_database(scratch) if backend == "sqlite" else scratch_postgresql()
        with database as url:
            perfdb = PerfDB.connect(url)
            try:
                upgrade_database(perfdb)
                rates[path] = report(path, timed(load, perfdb))
                assert perfdb.values.count() == ROWS
                rates[f"{path} again"] = report(f"{path} again (idempotent)", timed(load, perfdb))
                assert perfdb.values.count() == ROWS
            finally:
                perfdb.dispose()
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)

    started = time.perf_counter()
    frame = generate_values()
    print(f"generated {len(frame):,} values in {time.perf_counter() - started:.2f} s")
    with tempfile.TemporaryDirectory(prefix="jp_bench_") as directory:
        scratch = Path(directory)
        csv_path = scratch / "values.csv"
        started = time.perf_counter()
        frame.to_csv(csv_path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ", na_rep="")
        print(
            f"wrote {csv_path.stat().st_size / 1e6:.0f} MB CSV in "
            f"{time.perf_counter() - started:.2f} s"
        )
        results = {
            backend: bench_backend(backend, frame, csv_path, scratch) for backend in backends
        }

    if "postgresql" in results:
        rate = results["postgresql"]["import_frame"]
        verdict = "met" if rate >= TARGET_PG_ROWS_PER_SECOND else "MISSED"
        print(
            f"PostgreSQL import_frame: {rate:,.0f} rows/s, target "
            f"{TARGET_PG_ROWS_PER_SECOND:,} rows/s {verdict}"
        )
        return 0 if verdict == "met" else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
