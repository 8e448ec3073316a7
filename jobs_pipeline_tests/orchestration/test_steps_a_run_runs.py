"""Which steps a run executes, as a dependent step asks before it waits for its dependency: all
of them in a run of the whole job, however Dagster lists that run's step keys, and only the
selected ones in a re-execution "from failure". The real runs behind each case are in
`test_dependent_steps.py` (in-process, multiprocess, Celery, from failure)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from jobs_pipeline.orchestration.ops import _runs_in
from jobs_pipeline.perfdb.records import Step
from jobs_pipeline.perfdb.states import JobState

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def step(step_id: int, object_name: str, feature: str) -> Step:
    return Step(
        id=step_id,
        job_id=1,
        position=step_id,
        object_id=step_id,
        object_name=object_name,
        alarm_id=None,
        feature_id=None,
        state=JobState.CREATED,
        comment=None,
        created=NOW,
        started=None,
        finished=None,
        last_state_change=NOW,
        attempts=0,
        run_id=None,
        feature_name=feature,
    )


POWER, DOUBLED = step(11, "INV-01", "power"), step(12, "INV-01", "doubled")


def runs_in(step_keys: list[str] | None):  # type: ignore[no-untyped-def]
    """`_runs_in` of an op whose run selected `step_keys` (None: the whole job)."""
    context = SimpleNamespace(run=SimpleNamespace(step_keys_to_execute=step_keys))
    return _runs_in(context)  # type: ignore[arg-type]


def test_a_run_of_the_whole_job_runs_every_step() -> None:
    assert runs_in(None)(POWER) and runs_in(None)(DOUBLED)


def test_the_unresolved_key_of_the_mapped_op_means_every_step() -> None:
    # How the multiprocess and Celery executors list a whole run's mapped ops.
    whole = runs_in(["plan_steps", "run_step[?]", "summarise_job"])
    assert whole(POWER) and whole(DOUBLED)


def test_a_reexecution_from_failure_runs_only_the_selected_steps() -> None:
    from_failure = runs_in(["run_step[s12_INV_01_doubled]", "summarise_job"])
    assert from_failure(DOUBLED)
    assert not from_failure(POWER)
