"""How long the command line takes to start: `--help` and `job list`, as a person types them.

Prints the median wall time of fresh processes against the targets (`--help` under 0.3 s,
`job list` under 0.6 s), the bare interpreter as the baseline in the same run, and the modules
that `python -X importtime` finds slowest for each command.

    .venv/bin/python benchmarks/cli_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"--help": 0.3, "job list": 0.6}


def timed(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def slowest_imports(arguments: list[str], count: int = 5) -> list[tuple[int, str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "jobs_pipeline.cli", *arguments],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if cumulative.strip().isdigit():
            rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        db = f"sqlite:///{Path(scratch) / 'perfdb.sqlite'}"
        cli = [sys.executable, "-m", "jobs_pipeline.cli"]
        subprocess.run([*cli, "--db", db, "db", "upgrade"], check=True, capture_output=True)
        baseline = timed([sys.executable, "-c", "pass"], args.repeat)
        print(f"bare interpreter: {baseline * 1000:.0f} ms (median of {args.repeat})")
        commands = {"--help": ["--help"], "job list": ["--db", db, "job", "list"]}
        for name, arguments in commands.items():
            seconds = timed([*cli, *arguments], args.repeat)
            target = TARGETS[name]
            verdict = "met" if seconds < target else "MISSED"
            print(
                f"{name:>9}: {seconds * 1000:.0f} ms, {seconds / baseline:.1f}x the bare "
                f"interpreter; target < {target * 1000:.0f} ms: {verdict}"
            )
            for micros, module in slowest_imports(arguments):
                print(f"{'':>11}{micros / 1000:7.1f} ms  {module.strip()}")


if __name__ == "__main__":
    main()
