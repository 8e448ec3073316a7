"""`JobDataImport`: files of feature values imported as a job, one step per file.

Each step is the streamed import of `features import` (CSV or Parquet: object, feature,
timestamp, value) in one transaction: a file with a bad line anywhere writes nothing and its step
fails with the line in its comment; the other files' steps are not affected. A frontend queues
imports like any job; the files must be readable where the steps run.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from jobs_pipeline.jobs.base import JobInstance, JobStepError, StepOutput, StepWrite
from jobs_pipeline.jobs.registry import register
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InputError, InvalidParameters

PARAMETERS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Data Import parameters",
    "type": "object",
    "properties": {
        "paths": {
            "description": "CSV or Parquet files (object, feature, timestamp, value), one step "
            "each, as the machines running the steps see them.",
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "uniqueItems": True,
        },
        "sampling_period": {
            "description": "Sampling period in seconds of the features the import creates "
            "(default 600); an existing feature with another period is refused.",
            "type": "integer",
            "minimum": 1,
        },
    },
    "required": ["paths"],
    "additionalProperties": False,
}


@register
class JobDataImport(JobInstance):
    """Imports each file of `paths` in a step of its own, all or nothing per file."""

    _name = "Data Import"
    _description = "Files of feature values (CSV or Parquet), one step per file, all or nothing"
    _parameters_schema = PARAMETERS_SCHEMA

    @classmethod
    def check_parameters(cls, perfdb: PerfDB, parameters: dict[str, Any]) -> None:
        missing = [path for path in parameters["paths"] if not os.path.isfile(path)]
        if missing:
            raise InvalidParameters(
                "parameter 'paths': no such file: " + ", ".join(repr(path) for path in missing)
            )

    def _create_steps(self) -> list[dict[str, Any]]:
        # A step is about a file, not an object: its position is the file's index in `paths`.
        return [{"object_id": None} for _ in self.parameters["paths"]]

    def path_of(self, step_id: int) -> str:
        return str(self.parameters["paths"][self.steps[step_id].position])

    def _run_step(self, step_id: int) -> StepOutput:
        path = self.path_of(step_id)
        seconds = self.parameters.get("sampling_period")
        period = None if seconds is None else timedelta(seconds=seconds)
        started = time.perf_counter()
        try:
            summary = self.perfdb.values.import_csv(path, sampling_period=period)
        except InputError as error:  # a bad line, a missing file: nothing was written
            raise JobStepError(f"{path}: {error}") from None
        elapsed = time.perf_counter() - started
        return StepOutput(
            details={
                "file": path,
                "rows": summary.rows,
                "new_values": summary.new_values,
                "changed_values": summary.changed_values,
                "objects_created": len(summary.objects_created),
                "features_created": len(summary.features_created),
                "import_seconds": round(elapsed, 3),
                "rows_per_second": round(summary.rows / elapsed) if elapsed > 0 else None,
            },
            wrote=StepWrite(rows=summary.rows, file=path),
        )
