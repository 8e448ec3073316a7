"""`JobFeatureCalc`: values of derived features for objects over a period.

One step per (object, derived feature). A step depends on the steps of the same job that
compute its derived inputs for the same object, so `dc_power` is computed before `efficiency =
ac_power / dc_power` when both are in the job; an input that is not in the job is read as it is
stored. A step replaces the feature's stored values of its object and period, in the
transaction that finishes it.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

from jobs_pipeline import settings
from jobs_pipeline.calc import assess_data_quality
from jobs_pipeline.calc.derived import derive_values
from jobs_pipeline.calc.expressions import parse_expression
from jobs_pipeline.jobs.alarm_calc import parse_period
from jobs_pipeline.jobs.base import JobInstance, JobStepError, StepOutput, StepWrite
from jobs_pipeline.jobs.registry import register
from jobs_pipeline.jobs.step_details import data_quality_details
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.derived_features import replace_values
from jobs_pipeline.perfdb.records import DerivedFeature

PARAMETERS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Feature Calculation parameters",
    "type": "object",
    "properties": {
        "object_names": {
            "description": "Objects to calculate, e.g. ['INV-01', 'INV-02'].",
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "uniqueItems": True,
        },
        "feature_names": {
            "description": "Derived features to calculate (see 'features derive').",
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "uniqueItems": True,
        },
        "start": {
            "description": "Period start (inclusive): 'YYYY-MM-DD HH:MM:SS' (UTC) or ISO 8601.",
            "type": "string",
        },
        "end": {
            "description": "Period end (exclusive): 'YYYY-MM-DD HH:MM:SS' (UTC) or ISO 8601.",
            "type": "string",
        },
    },
    "required": ["object_names", "feature_names", "start", "end"],
    "additionalProperties": False,
}


def calculation_order(definitions: dict[str, DerivedFeature]) -> list[str]:
    """The named derived features, each after those of them it reads (directly or through
    derived features outside the list), otherwise in the given order. Definitions have no
    cycles (refused when defined)."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for feature in definitions[name].inputs:
            if feature.name in definitions:
                visit(feature.name)
        ordered.append(name)

    for name in definitions:
        visit(name)
    return ordered


@register
class JobFeatureCalc(JobInstance):
    """Computes derived features (`features derive`) for each object over the job's period."""

    _name = "Feature Calculation"
    _description = (
        "Values of derived features for each (object, feature) pair over a half-open period, "
        "each feature after the derived features it reads"
    )
    _parameters_schema = PARAMETERS_SCHEMA

    _definitions: dict[str, DerivedFeature] | None

    @classmethod
    def check_parameters(cls, perfdb: PerfDB, parameters: dict[str, Any]) -> None:
        parse_period(parameters)
        perfdb.catalog.object_ids(parameters["object_names"])
        perfdb.derived.by_names(parameters["feature_names"])

    def _prepare(self) -> None:
        self._period = parse_period(self.parameters)
        self._definitions = None

    def _derived(self) -> dict[str, DerivedFeature]:
        if self._definitions is None:
            self._definitions = self.perfdb.derived.by_names(self.parameters["feature_names"])
        return self._definitions

    def _create_steps(self) -> list[dict[str, Any]]:
        object_ids = self.perfdb.catalog.object_ids(self.parameters["object_names"])
        definitions = self._derived()
        order = calculation_order(definitions)
        # Dependencies within the job: a feature's derived inputs, directly or through derived
        # features the job does not compute (those are read as stored).
        reads = {name: self._derived_inputs_in_job(name, definitions) for name in order}
        steps: list[dict[str, Any]] = []
        # All objects' steps of one feature together: the features in calculation order.
        position: dict[tuple[str, str], int] = {}
        for name in order:
            for object_name in self.parameters["object_names"]:
                position[(object_name, name)] = len(steps)
                steps.append(
                    {
                        "object_id": object_ids[object_name],
                        "feature_id": definitions[name].feature.id,
                        "depends_on": tuple(
                            position[(object_name, other)] for other in reads[name]
                        ),
                    }
                )
        return steps

    def _derived_inputs_in_job(
        self, name: str, definitions: dict[str, DerivedFeature]
    ) -> list[str]:
        return [feature.name for feature in definitions[name].inputs if feature.name in definitions]

    def _run_step(self, step_id: int) -> StepOutput:
        step = self.steps[step_id]
        definition = next(
            item for item in self._derived().values() if item.feature.id == step.feature_id
        )
        try:
            min_coverage = settings.MIN_COVERAGE_PERCENT.read()
        except ValueError as error:
            raise JobStepError(str(error)) from None
        period = self._period
        read_started = time.perf_counter()
        inputs: dict[str, pd.Series] = {}
        periods = {}
        for feature in definition.inputs:
            # Nearest samples up to half a period outside the job's period count too.
            margin = feature.sampling_period / 2
            start = period.start if feature is definition.inputs[0] else period.start - margin
            end = period.end if feature is definition.inputs[0] else period.end + margin
            inputs[feature.name] = self.perfdb.values.read(step.object_key, feature.id, start, end)
            periods[feature.name] = feature.sampling_period
        compute_started = time.perf_counter()
        expression = parse_expression(definition.expression)
        values = derive_values(expression, inputs, periods)
        quality = assess_data_quality(values, period, definition.feature.sampling_period)
        if quality.samples == quality.nan_samples:
            first = definition.inputs[0].name
            raise JobStepError(
                f"no data for {definition.feature.name!r} of object {step.object_name!r} in "
                f"{period}: {first!r} has {len(inputs[first])} samples there"
                + "".join(
                    f", {name!r} {len(series)}" for name, series in inputs.items() if name != first
                )
            )
        computed = time.perf_counter()

        def write(connection: Connection) -> None:
            # Runs in the transaction that marks the step Finished (see `StepOutput`).
            replace_values(
                connection,
                object_id=step.object_key,
                feature_id=definition.feature.id,
                start=period.start,
                end=period.end,
                values=values,
            )

        return StepOutput(
            details={
                "object": step.object_name,
                "feature": definition.feature.name,
                "expression": definition.expression,
                **data_quality_details(quality),
                "values_written": len(values),
                "read_seconds": compute_started - read_started,
                "compute_seconds": computed - compute_started,
            },
            note=quality.low_coverage_note(min_coverage),
            write=write,
            wrote=StepWrite(
                rows=len(values),
                feature=definition.feature.name,
                object_name=step.object_name,
                period=period,
            ),
        )
