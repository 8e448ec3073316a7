"""The `jobs-pipeline` command.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem, nothing written),
1 any other failure. `--json` prints machine-readable output on stdout and nothing else there.
"""

from jobs_pipeline.cli.features import _import_progress
from jobs_pipeline.cli.job import _interrupted_run
from jobs_pipeline.cli.main import build_parser, main
from jobs_pipeline.cli.output import UsageError

__all__ = ["UsageError", "_import_progress", "_interrupted_run", "build_parser", "main"]
