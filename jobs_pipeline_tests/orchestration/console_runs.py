"""A queued job's run in a process of its own, for the tests of what a run prints.

`python -m jobs_pipeline_tests.orchestration.console_runs JOB_ID` executes the job's run the way
a run worker does (the run config and tags of the queue sensor, the in-process executor, the
run's console logger at the deployment's level) on the Dagster instance of `DAGSTER_HOME`, and
exits. Everything the run logs goes to this process's stderr, where a test counts the lines.
The test job types of `processes.py` are known here, as in the test code location.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from jobs_pipeline_tests.orchestration.scratch_deployment import REPO_ROOT

RUN_TIMEOUT = 180.0


def perfdb_job_with_test_types() -> dg.JobDefinition:
    from jobs_pipeline_tests.orchestration.processes import slow_steps_definitions

    return slow_steps_definitions().get_job_def("perfdb_job")


@dataclass(frozen=True)
class ConsoleRun:
    run_id: str
    output: str

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()


def run_with_console(job_id: int, env: Mapping[str, str]) -> ConsoleRun:
    """Runs the job in a child process with environment `env`; its run id and its output."""
    result = subprocess.run(
        [sys.executable, "-m", __name__, str(job_id)],
        env=dict(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    *output, run_id = result.stdout.splitlines() or [""]
    assert result.returncode == 0 and run_id, f"{result.stdout}\n{result.stderr}"
    return ConsoleRun(run_id=run_id, output="\n".join([*output, result.stderr]).strip("\n"))


def main(job_id: int) -> None:
    from jobs_pipeline.orchestration.sensors import run_request
    from jobs_pipeline.perfdb import PerfDB

    perfdb_job_with_test_types()  # registers the test job types
    perfdb = PerfDB.connect()
    request = run_request(perfdb.queue.get_job(job_id))
    perfdb.dispose()
    run_config = request.run_config
    config = run_config if isinstance(run_config, dict) else run_config.to_config_dict()
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(perfdb_job_with_test_types),
            instance,
            run_config=config,
            tags=request.tags,
        )
        # The last line of stdout: the run, for the test to read its events.
        print(result.run_id)


if __name__ == "__main__":
    main(int(sys.argv[1]))
