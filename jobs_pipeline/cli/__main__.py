"""`python -m jobs_pipeline.cli`: the `jobs-pipeline` command."""

import sys

from jobs_pipeline.cli.main import main

sys.exit(main())
