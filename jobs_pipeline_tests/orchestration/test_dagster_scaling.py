"""The step scheduler patches (`dagster_scaling`): the tripwire for a Dagster upgrade, and runs
that start their steps in the same order patched as Dagster does on its own."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.outputs import StepOutputHandle

from jobs_pipeline.orchestration import dagster_scaling

STEPS = dagster_scaling.WINDOW * 2 + 5


def test_the_patched_functions_are_those_of_the_tested_dagster() -> None:
    # A Dagster upgrade fails here: read the new `ActiveExecution.get_steps_to_execute` and
    # `get_known_state`, check that the reasoning in `dagster_scaling` still holds, and update
    # the version and digests. Until then `install()` patches nothing (runs are only slower).
    assert dg.__version__ == dagster_scaling.TESTED_DAGSTER_VERSION
    assert dagster_scaling.install()
    for name, digest in dagster_scaling.TESTED_SOURCES.items():
        assert dagster_scaling.source_digest(dagster_scaling.originals[name]) == digest, name
        assert getattr(ActiveExecution, name) is not dagster_scaling.originals[name]


def _graph_job(priority_every: int | None = None, pool: str | None = None) -> dg.JobDefinition:
    @dg.op(out=dg.DynamicOut(dg.Nothing))
    def fan_out() -> Any:
        for index in range(STEPS):
            yield dg.DynamicOutput(None, mapping_key=f"k{index:04d}")

    @dg.op(ins={"after": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing), pool=pool)
    def plain() -> None:
        pass

    @dg.op(
        ins={"after": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        tags={"dagster/priority": "5"},
    )
    def urgent() -> None:
        pass

    @dg.op(ins={"after": dg.In(dg.Nothing)})
    def done() -> bool:
        return True

    @dg.op(ins={"after": dg.In(dg.Nothing), "also": dg.In(dg.Nothing)})
    def both_done() -> bool:
        return True

    @dg.job(name=f"fan_out_{priority_every}_{pool}")
    def job() -> None:
        planned = fan_out()
        if priority_every is None:
            done(planned.map(plain).collect())
        else:
            both_done(after=planned.map(plain).collect(), also=planned.map(urgent).collect())

    return job


def _started(job: dg.JobDefinition, instance: dg.DagsterInstance) -> list[str]:
    result = job.execute_in_process(instance=instance)
    assert result.success
    return [
        event.step_key or ""
        for event in result.all_events
        if event.event_type_value == "STEP_START"
    ]


def _unpatched(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, function in dagster_scaling.originals.items():
        monkeypatch.setattr(ActiveExecution, name, function)


@pytest.mark.parametrize(
    "make_job",
    [
        pytest.param(lambda: _graph_job(), id="one op mapped"),
        pytest.param(lambda: _graph_job(pool="scaling_test"), id="one op in a pool"),
        pytest.param(lambda: _graph_job(priority_every=1), id="two ops, two priorities"),
    ],
)
def test_steps_start_in_the_order_dagster_starts_them(
    make_job: Callable[[], dg.JobDefinition], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dagster_scaling.install()
    job = make_job()
    with dg.instance_for_test() as instance:
        patched = _started(job, instance)
        with monkeypatch.context() as unpatched:
            _unpatched(unpatched)
            original = _started(job, instance)
    assert len(patched) >= STEPS + 2
    assert patched == original


def test_the_known_state_is_the_one_dagster_builds() -> None:
    assert dagster_scaling.install()
    handle = StepOutputHandle("fan_out", "result", "k0001")
    execution = SimpleNamespace(
        _retry_state=SimpleNamespace(snapshot_attempts=lambda: {"op": 1}),
        _completed_dynamic_outputs={"fan_out": {"result": ["k0001"]}},
        _plan=SimpleNamespace(
            known_state=SimpleNamespace(step_output_versions=None, parent_state=None)
        ),
        _step_outputs={handle},
    )
    patched = ActiveExecution.get_known_state(execution)  # type: ignore[arg-type]
    original = dagster_scaling.originals["get_known_state"](execution)
    assert patched == original
    assert type(patched) is type(original)
