"""The run's console logger: an `ExpectedFailure` is one line, anything else keeps its trace.

It reads Dagster's log records (the `dagster_meta` attribute, a step failure's error class and
description): if a Dagster release changes them, the first test fails here, while runs go on
logging Dagster's full lines (the filter fails open)."""

from __future__ import annotations

import logging

import dagster as dg
import pytest

from jobs_pipeline.orchestration.console import (
    ExpectedFailure,
    OneLineExpectedFailures,
    console_logger,
)


@dg.op
def fails_for_people() -> None:
    raise ExpectedFailure(description="step 12: no data for feature 'temperature'")


@dg.op
def fails_with_a_bug() -> None:
    raise RuntimeError("a bug")


@dg.job(logger_defs={"console": console_logger})
def two_failures() -> None:
    fails_for_people()
    fails_with_a_bug()


def test_an_expected_failure_is_one_line_and_a_bug_keeps_its_trace(
    capfd: pytest.CaptureFixture[str],
) -> None:
    result = two_failures.execute_in_process(
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )

    assert not result.success
    err = capfd.readouterr().err
    [expected] = [line for line in err.splitlines() if "fails_for_people - STEP_FAILURE" in line]
    assert expected.endswith("failed. step 12: no data for feature 'temperature'")
    # The bug's failure keeps Dagster's block: the error, then its stack.
    bug = err[err.index("fails_with_a_bug - STEP_FAILURE") :]
    assert "RuntimeError: a bug" in bug and "Stack Trace:" in bug
    # No block of the expected failure anywhere (its step's line, the run's failure).
    assert "ExpectedFailure" not in err
    # The run page keeps the description first.
    [failure] = [
        event
        for event in result.all_events
        if event.is_step_failure and event.step_key == "fails_for_people"
    ]
    description = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert description == "step 12: no data for feature 'temperature'"


def test_a_record_of_another_shape_is_logged_as_it_is() -> None:
    record = logging.LogRecord("dagster", logging.ERROR, __file__, 1, "line\n\nStack", (), None)
    record.dagster_meta = {"dagster_event": object()}  # type: ignore[attr-defined]

    assert OneLineExpectedFailures().filter(record)
    assert record.getMessage() == "line\n\nStack"
