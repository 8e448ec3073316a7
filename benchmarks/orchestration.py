"""What Dagster costs per step: one 200-step `JobAlarmCalc` run standalone and through Dagster.

The job covers the synthetic fleet's 50 objects x 4 alarms over 30 days, in a scratch PostgreSQL
performance database. It runs, requeued in between (requeueing a Finished job resets its steps):

  (a)  standalone, `JobInstance.run()`;
  (b)  through Dagster in this process: the code location's `perfdb_job` (in-process executor)
       with `execute_job`, on the production instance configuration (`dagster.yaml`:
       `EnvironmentStorage`, pooled connections to a scratch PostgreSQL database via
       `DAGSTER_PG_URL`);
  (b') the same on dagster-postgres's stock storage (`storage: postgres`), to show what the
       pooled storage saves;
  (b") the same as (b) with `synchronous_commit = off` on the Dagster database (an experiment:
       Dagster commits every event on its own, and each commit waits for a WAL flush);
  (c)  the same graph with the multiprocess executor (one process per step), pooled storage.

Then a one-step job goes through a real `dagster-daemon run -w workspace.yaml`: the median over
five requeues of queued -> job started (its run claimed it), queued -> the run's RUN_START, and
queued -> job Finished.

    .venv/bin/python benchmarks/orchestration.py [--objects N] [--days D] [--repeat R]
        [--no-multiprocess] [--no-daemon] [--profile] [--workspace FILE]

With `--steps N [N ...]` it measures scale instead: for each N, a job of N steps (objects x alarms;
10,000 = 500 objects x 20 alarms, the fleet's four and copies of them under other ids; `--days`
defaults to 3) runs standalone, then through Dagster in a run-worker process of its own
(`execute_job` of the production `perfdb_job`, pooled PostgreSQL storage, step ops in the pool
`perfdb`), and for N up to `--no-pool-up-to` once more on an instance without the pool's limit. It
prints overhead per step against standalone and its growth over the smallest N, the plan op's time
per step, the summary op's time, the run worker's peak RSS (VmHWM), events per step by type, and
the time `dagster-webserver` (started on the benchmark's instance) takes to answer the run page's
queries (`run_page.graphql`: the run, the first 1,000 events, the step stats), with the targets
and `met`/`MISSED`. `--profile` adds one cProfiled run per N. Example:

    .venv/bin/python benchmarks/orchestration.py --steps 200 2000 10000 2>/dev/null

Dagster logs every event to stderr (`2>/dev/null` keeps just the tables); (c) starts a process per
step and takes minutes (`--no-multiprocess` skips it). `--profile` runs (b) once more with the
event storage's statements timed, and once under cProfile, and prints where the time goes.
`--workspace` gives the daemon another code location, e.g. to try other sensor settings.
The benchmarks live in `step_overhead.py`, `step_scale.py` and `daemon_latency.py`.
`JOBS_PIPELINE_BENCH_PG_URL` is an admin URL of a PostgreSQL server on which the benchmark
creates and drops its scratch databases (default: the local server as root).
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from pathlib import Path

from daemon_latency import bench_daemon
from step_overhead import bench_runs
from step_scale import bench_scale

from jobs_pipeline_tests.orchestration.scratch_deployment import PRODUCTION_WORKSPACE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument(
        "--days", type=int, default=None, help="period of the job (default 30; 3 with --steps)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        help="instead of the 200-step comparison: one run each of jobs of these sizes "
        "(e.g. 200 2000 10000), with plan time, overhead, RSS, events and run page timings",
    )
    parser.add_argument(
        "--no-pool-up-to",
        type=int,
        default=2000,
        help="with --steps: also run jobs up to this size without the pool limit (default 2000)",
    )
    parser.add_argument("--no-webserver", dest="webserver", action="store_false")
    parser.add_argument("--query-repeat", type=int, default=3, help="answers timed per query")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of (a) and (b)s")
    parser.add_argument(
        "--pooled-only", action="store_true", help="only (a) and (b) (and (c)): the headline ratio"
    )
    parser.add_argument("--no-multiprocess", dest="multiprocess", action="store_false")
    parser.add_argument("--no-daemon", dest="daemon", action="store_false")
    parser.add_argument("--profile", action="store_true", help="cProfile one run of (b)")
    parser.add_argument(
        "--workspace",
        type=Path,
        default=PRODUCTION_WORKSPACE,
        help="workspace file of the daemon (default: the repository's)",
    )
    args = parser.parse_args()
    if args.days is None:
        args.days = 3 if args.steps else 30

    with tempfile.TemporaryDirectory(prefix="jp_bench_orchestration_") as directory:
        scratch = Path(directory)
        if args.steps:
            with ExitStack() as stack:
                bench_scale(args, scratch, stack)
            return
        with ExitStack() as stack:
            bench_runs(args, scratch, stack)
        if args.daemon:
            with ExitStack() as stack:
                bench_daemon(args.workspace, scratch, stack)


if __name__ == "__main__":
    main()
