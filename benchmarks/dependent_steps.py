"""What dependencies between steps cost: a Feature Calculation job of N objects x 2 chained
derived features, against the same number of steps without dependencies.

On a scratch PostgreSQL performance database, each object gets a day of 10-minute `voltage` and
`current`. Derived: `power = voltage * current`, `doubled = power * 2` (reads `power`: its step
depends on the object's `power` step) and `doubled_free = voltage * current * 2` (the same work,
reading only measured features: no dependency). Two jobs of 2 N steps each run through Dagster
in this process (the code location's `perfdb_job`, in-process executor, a Dagster instance on
SQLite in a temporary folder), alternately, `--repeat` times each; the median wall times and
their ratio are printed, with the target (dependent within 1.3x of independent).

    .venv/bin/python benchmarks/dependent_steps.py [--objects 1000] [--repeat 2] 2>/dev/null
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import dagster as dg
from scratch import scratch_postgresql

from jobs_pipeline.definitions import defs
from jobs_pipeline.jobs import create_job, upgrade_database
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import PERFDB_URL
from jobs_pipeline_tests.power_chain import seed_power_chain

TARGET_RATIO = 1.3
PERIOD = {"start": "2024-01-01 00:00:00", "end": "2024-01-02 00:00:00"}


def perfdb_job() -> dg.JobDefinition:
    return defs.get_job_def("perfdb_job")


def seed(perfdb: PerfDB, objects: int) -> list[str]:
    """A day of 10-minute values per object, the chained features and `doubled_free`."""
    names = [f"INV-{n:04d}" for n in range(objects)]
    seed_power_chain(perfdb, names, 144, sampling_period="10min")
    perfdb.derived.define("doubled_free", "voltage * current * 2")
    return names


def timed_run(perfdb: PerfDB, instance: dg.DagsterInstance, job_id: int) -> float:
    perfdb.queue.queue_job(job_id)
    started = time.perf_counter()
    result = dg.execute_job(
        dg.reconstructable(perfdb_job),
        instance=instance,
        run_config={"ops": {"plan_steps": {"config": {"job_id": job_id}}}},
    )
    seconds = time.perf_counter() - started
    job = perfdb.queue.get_job(job_id)
    if not result.success or job.state != JobState.FINISHED:
        raise SystemExit(f"job {job_id} ended {job.state.label}: {job.comment}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000, help="objects (steps = 2 x this)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each job")
    args = parser.parse_args()
    with scratch_postgresql("jp_bench_deps") as url, tempfile.TemporaryDirectory() as home:
        os.environ[PERFDB_URL.name] = url
        perfdb = PerfDB.connect(url)
        upgrade_database(perfdb)
        names = seed(perfdb, args.objects)
        jobs = {
            kind: create_job(
                perfdb,
                "Feature Calculation",
                {"object_names": names, "feature_names": ["power", second], **PERIOD},
            ).id
            for kind, second in (("dependent", "doubled"), ("independent", "doubled_free"))
        }
        # Queued then run: the first run of each creates its steps.
        times: dict[str, list[float]] = {kind: [] for kind in jobs}
        with dg.DagsterInstance.local_temp(home) as instance:
            for _ in range(args.repeat):
                for kind, job_id in jobs.items():
                    times[kind].append(timed_run(perfdb, instance, job_id))
        steps = len(perfdb.queue.get_steps(jobs["dependent"]))
        dependent = statistics.median(times["dependent"])
        independent = statistics.median(times["independent"])
        ratio = dependent / independent
        print(f"{steps} steps ({args.objects} objects x 2 features), median of {args.repeat}:")
        for label, seconds in (("with", dependent), ("without", independent)):
            per_step = seconds / steps * 1000
            print(f"  {label:>7} dependencies {seconds:8.1f} s ({per_step:.1f} ms/step)")
        met = "met" if ratio <= TARGET_RATIO else "MISSED"
        print(f"  ratio {ratio:.2f}x (target <= {TARGET_RATIO}x: {met})")
        perfdb.dispose()


if __name__ == "__main__":
    main()
