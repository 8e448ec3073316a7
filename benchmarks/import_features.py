"""Streamed bulk import of feature values (CSV and Parquet) into SQLite and PostgreSQL.

`--rows` values (default 1,000,000: 20 objects x 5 features x 10,000 ten-minute samples; more
rows mean more samples) are written to a CSV and a Parquet file in blocks, then imported by
`PerfDB.values.import_csv` (what `features import` runs) in a child process each, into a fresh
database, and imported again (nothing changes). Each line gives rows/s and the child's peak RSS.
The run also measures the bound, the same rows written into a bare table with only the primary
key (a binary COPY on PostgreSQL; on SQLite an executemany of ready tuples, what SQLite itself
costs), and prints each import's ratio to it.

    .venv/bin/python benchmarks/import_features.py [--rows N] [--backend sqlite|postgresql|both]
        [--format csv|parquet|both]

`JOBS_PIPELINE_BENCH_PG_URL` is an admin URL of a PostgreSQL server on which the benchmark
creates and drops a scratch database (default: the local server as root).
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from scratch import scratch_postgresql  # benchmarks/scratch.py

OBJECTS = 20
FEATURES = 5
TARGETS = {"postgresql": (300_000, 500_000), "sqlite": (500_000, 500_000)}
TARGET_RATIO = 1.6


def blocks(rows: int, seed: int = 0) -> list[tuple[str, int, int]]:
    """(object, first sample, samples) per block of at most 500,000 rows, in file order."""
    samples = rows // (OBJECTS * FEATURES)
    per_block = max(1, 500_000 // FEATURES)
    return [
        (f"BENCH-{o:02d}", start, min(per_block, samples - start))
        for o in range(1, OBJECTS + 1)
        for start in range(0, samples, per_block)
    ]


def block_frame(name: str, start: int, samples: int, rng: np.random.Generator) -> pd.DataFrame:
    times = pd.date_range("2024-01-01", periods=samples, freq="10min", tz="UTC") + pd.Timedelta(
        minutes=10 * start
    )
    values = rng.normal(1000.0, 250.0, FEATURES * samples)
    values[rng.random(values.size) < 0.01] = np.nan
    return pd.DataFrame(
        {
            "object": name,
            "feature": np.repeat([f"feature_{i}" for i in range(1, FEATURES + 1)], samples),
            "timestamp": np.tile(times, FEATURES),
            "value": values,
        }
    )


def write_files(rows: int, directory: Path) -> tuple[Path, Path]:
    csv_path, parquet_path = directory / "values.csv", directory / "values.parquet"
    rng = np.random.default_rng(0)
    writer = None
    with csv_path.open("w", encoding="utf-8") as csv_file:
        for index, block in enumerate(blocks(rows)):
            frame = block_frame(*block, rng)
            frame.to_csv(csv_file, index=False, header=index == 0, date_format="%Y-%m-%dT%H:%M:%SZ")
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(parquet_path, table.schema)
            writer.write_table(table)
    assert writer is not None
    writer.close()
    return csv_path, parquet_path


def child(url: str, path: str) -> None:
    """Imports the file twice and prints seconds, new values and peak RSS as JSON."""
    from jobs_pipeline.perfdb import PerfDB

    perfdb = PerfDB.connect(url)
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        summary = perfdb.values.import_csv(path)
        timings.append((time.perf_counter() - started, summary.new_values))
    perfdb.dispose()
    print(json.dumps({"timings": timings, "peak_mb": peak_mb(), "maxrss_mb": maxrss_mb()}))


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb() -> float:
    """This process's own peak RSS. Linux carries the parent's peak over into a child's
    ru_maxrss when the child was forked (vforked) from it and then exec'd, so the peak of the
    address space (VmHWM) is read where there is one."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return maxrss_mb()


def run_child(url: str, path: Path) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", url, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.splitlines()[-1])


def copy_bound(url: str, directory: Path) -> float:
    """Seconds of a binary COPY of the stored rows into a bare table with the primary key."""
    dump = directory / "values.copy"
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection, connection.cursor() as cursor:
        with (
            dump.open("wb") as file,
            cursor.copy("COPY feature_values TO STDOUT (FORMAT binary)") as copy,
        ):
            for data in copy:
                file.write(data)
        cursor.execute(
            "CREATE TABLE bound (object_id integer, feature_id integer, timestamp timestamptz,"
            " value float8, PRIMARY KEY (object_id, feature_id, timestamp))"
        )
        connection.commit()
        started = time.perf_counter()
        with dump.open("rb") as file, cursor.copy("COPY bound FROM STDIN (FORMAT binary)") as copy:
            while data := file.read(8 << 20):
                copy.write(data)
        connection.commit()
        seconds = time.perf_counter() - started
        cursor.execute("DROP TABLE bound")
    dump.unlink()
    return seconds


def sqlite_bound(database: Path, directory: Path) -> float:
    """Seconds SQLite itself takes to insert the stored rows, handed over as ready tuples in
    blocks, into a bare table with the primary key (one transaction, the engine's pragmas)."""
    bound = directory / "bound.sqlite"
    source = sqlite3.connect(database)
    target = sqlite3.connect(bound, isolation_level=None)
    target.execute("PRAGMA journal_mode = WAL")
    target.execute("PRAGMA synchronous = NORMAL")
    target.execute(
        "CREATE TABLE bound (object_id INTEGER NOT NULL, feature_id INTEGER NOT NULL,"
        " timestamp VARCHAR(26) NOT NULL, value DOUBLE,"
        " PRIMARY KEY (object_id, feature_id, timestamp))"
    )
    cursor = source.execute(
        "SELECT object_id, feature_id, timestamp, value FROM feature_values ORDER BY 1, 2, 3"
    )
    seconds = 0.0
    target.execute("BEGIN IMMEDIATE")
    while block := cursor.fetchmany(500_000):
        started = time.perf_counter()
        target.executemany("INSERT INTO bound VALUES (?, ?, ?, ?)", block)
        seconds += time.perf_counter() - started
    started = time.perf_counter()
    target.execute("COMMIT")
    seconds += time.perf_counter() - started
    source.close()
    target.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{bound}{suffix}").unlink(missing_ok=True)
    return seconds


BOUNDS = {
    "postgresql": "binary COPY of the same rows into a bare table with the primary key",
    "sqlite": "executemany of the same rows (ready tuples) into a bare table with the primary key",
}


def bench(backend: str, path: Path, rows: int, directory: Path) -> None:
    from jobs_pipeline.jobs import upgrade_database
    from jobs_pipeline.perfdb import PerfDB

    if backend == "sqlite":
        database = directory / f"bench_{uuid.uuid4().hex[:8]}.sqlite"
        urls = [f"sqlite:///{database}"]
        context = None
    else:
        context = scratch_postgresql()
        urls = [context.__enter__()]
    try:
        perfdb = PerfDB.connect(urls[0])
        upgrade_database(perfdb)
        perfdb.dispose()
        result = run_child(urls[0], path)
        if backend == "postgresql":
            bound = copy_bound(urls[0], directory)
        else:
            bound = sqlite_bound(database, directory)
        first_target, again_target = TARGETS[backend]
        labels = ("first import", "re-import")
        for label, (seconds, new), target in zip(
            labels, result["timings"], (first_target, again_target), strict=True
        ):
            rate = rows / seconds
            ratio = f"  {seconds / bound:4.2f}x the bound"
            verdict = "met" if rate >= target else f"MISSED by {1 - rate / target:.0%}"
            print(
                f"  {backend:<10} {path.suffix[1:]:<8} {label:<13} {seconds:7.2f} s "
                f"{rate:>11,.0f} rows/s  {new:>10,} new  (target {target:,}: {verdict}){ratio}"
            )
        print(
            f"  {backend:<10} {path.suffix[1:]:<8} peak RSS of the importing process: "
            f"{result['peak_mb']:.0f} MB (target < 400 MB)"
        )
        print(
            f"  {backend:<10} bound: {BOUNDS[backend]}: {bound:.2f} s, {rows / bound:,.0f} rows/s "
            f"(target ratio <= {TARGET_RATIO})"
        )
    finally:
        if context is not None:
            context.__exit__(None, None, None)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{database}{suffix}").unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--format", choices=("csv", "parquet", "both"), default="both")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    formats = ("csv", "parquet") if args.format == "both" else (args.format,)
    with tempfile.TemporaryDirectory(prefix="jp_bench_") as name:
        directory = Path(name)
        started = time.perf_counter()
        csv_path, parquet_path = write_files(args.rows, directory)
        rows = args.rows // (OBJECTS * FEATURES) * OBJECTS * FEATURES
        print(
            f"wrote {rows:,} values: {csv_path.stat().st_size / 1e6:.0f} MB CSV, "
            f"{parquet_path.stat().st_size / 1e6:.0f} MB Parquet in "
            f"{time.perf_counter() - started:.1f} s"
        )
        paths = {"csv": csv_path, "parquet": parquet_path}
        for backend in backends:
            for fmt in formats:
                bench(backend, paths[fmt], rows, directory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
