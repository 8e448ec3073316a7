"""A run's console: one line for a failure meant for people, full traces for everything else.

A step that fails for a reason worth telling the user (a `JobStepError`, a step not run because
a step it depends on failed, a canceled job) fails its op with `ExpectedFailure`. Dagster logs
every op failure with the exception's stack under it; the run's console logger here replaces
that block with the failure's description, so that `dagster dev`, the daemon and `job run` show
one line: the step and its message. The run page keeps the message first, as for any failure.
Any other exception keeps its trace.

The filter reads Dagster's log record (`dagster_meta` and the step failure's data, as in dagster
1.13.27); a record of another shape is logged as Dagster wrote it (`test_console.py` says when a
release changes it).
"""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg

# Dagster's attribute of the log records it passes to a run's loggers
# (`dagster._core.log_manager.LOG_RECORD_METADATA_ATTR`).
DAGSTER_RECORD_ATTR = "dagster_meta"


class ExpectedFailure(dg.Failure):
    """An op failure for a reason meant for people: one line on the console, no stack."""


# The errors whose console lines lose their stack: failures meant for people, and the stop of a
# canceled job's run (`canceled_runs.RunStopped`, named here so that this module imports none).
ONE_LINE_ERRORS = frozenset({ExpectedFailure.__name__, "RunStopped"})


def _expected_failure_text(record: logging.LogRecord) -> str | None:
    """The console line of a record about an `ExpectedFailure` (a step's failure, or the run's
    failure that names it), else None."""
    meta = getattr(record, DAGSTER_RECORD_ATTR, None)
    event = meta.get("dagster_event") if isinstance(meta, dict) else None
    data = getattr(event, "event_specific_data", None)
    error = getattr(data, "error", None)
    if getattr(error, "cls_name", None) not in ONE_LINE_ERRORS:
        return None
    # Dagster puts the error block after a blank line; what comes before names the event.
    header = record.getMessage().split("\n\n", 1)[0]
    description = getattr(getattr(data, "user_failure_data", None), "description", None)
    if not (isinstance(description, str) and description):
        # "RunStopped: job 2 was canceled ...": the text after the class name.
        description = str(getattr(error, "message", "")).partition(": ")[2]
    text = " ".join(description.split())
    return f"{header} {text}" if text and text not in header else header


class OneLineExpectedFailures(logging.Filter):
    """Cuts the stack off the console line of an `ExpectedFailure` (fails open)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = _expected_failure_text(record)
        except Exception:  # a record of another shape: logged as it is
            return True
        if text is not None:
            record.msg = text
            record.args = ()
        return True


@dg.logger(
    {
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "name": dg.Field(str, is_required=False, default_value="dagster"),
    },
    description="Dagster's colored console logger, with failures meant for people on one line.",
)
def console_logger(init_context: Any) -> logging.Logger:
    logger = dg.colored_console_logger.logger_fn(init_context)  # type: ignore[attr-defined]
    one_line = OneLineExpectedFailures()
    for handler in logger.handlers:
        handler.addFilter(one_line)
    return logger
