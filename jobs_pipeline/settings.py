"""Every environment setting of the project: its name, the values it takes, its default and its
meaning, in one table (`SETTINGS`), read through one method (`Setting.read`).

Every layer may import this module; it imports nothing of the project and nothing heavy, so the
command line can read settings before it parses its arguments.

Reading: nothing is read at import. `read()` looks the variable up when a value is needed and
parses and checks its text once per process (the result is kept for that text). A process that
changes its own environment is obeyed at once, with no cache to reset: `job run` sets
`PERFDB_URL` and `DAGSTER_HOME` for the Dagster processes it starts, and tests set variables with
`monkeypatch`. Functions that take an `environ` mapping (for tests) pass it on to `read()`.

A bad value raises `SettingError`, a `ValueError` whose one-line message names the variable, what
it takes and the text it got; the command line exits 2 with it.

README's configuration table is generated from `SETTINGS`: `python -m jobs_pipeline.settings
--markdown` prints it, and a test fails when README's table differs.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class SettingError(ValueError):
    """An environment variable holds a value its setting does not take."""


@dataclass(frozen=True, kw_only=True)
class Setting(Generic[T]):
    """One environment variable: `parse` turns its text into the value (raising `ValueError`,
    optionally with a detail, for a bad text); unset or blank means `default`."""

    name: str
    # What a value looks like, in words: README's "value" column and every error message.
    takes: str
    default: T
    # The default as README shows it (markdown).
    shown_default: str
    meaning: str
    parse: Callable[[str], T] = field(repr=False)

    def text(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The variable's text without surrounding blanks; None when unset or blank."""
        env = os.environ if environ is None else environ
        text = (env.get(self.name) or "").strip()
        return text or None

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        return self.text(environ) is not None

    def read(self, environ: Mapping[str, str] | None = None) -> T:
        """The setting's value in this environment (`os.environ` unless given).

        Raises:
            SettingError: The variable is set to a text `parse` refuses.
        """
        text = self.text(environ)
        if text is None:
            return self.default
        key = (self.name, text)
        try:
            return _PARSED[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        try:
            value = self.parse(text)
        except ValueError as error:
            raise self.error(text, str(error)) from None
        with _PARSED_LOCK:
            if len(_PARSED) >= _PARSED_LIMIT:
                _PARSED.clear()
            _PARSED[key] = value
        return value

    def error(self, text: str, detail: str = "") -> SettingError:
        """The error for a text this setting does not take (for checks made by the caller)."""
        message = f"{self.name} must be {self.takes}, got {text!r}"
        return SettingError(f"{message} ({detail})" if detail else message)


# Parsed values by (variable, text). Texts change rarely (tests), so this stays small; the limit
# only guards against a process that tries many.
_PARSED: dict[tuple[str, str], Any] = {}
_PARSED_LOCK = threading.Lock()
_PARSED_LIMIT = 1024


# --- parsers ---------------------------------------------------------------------------------


def _text(text: str) -> str:
    return text


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError() from None
    if not math.isfinite(value):
        raise ValueError()
    return value


def _percent(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 100:
        raise ValueError()
    return value


def _positive_seconds(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise ValueError()
    return value


def _look_back_hours(text: str) -> timedelta:
    hours = _number(text)
    if not 0 < hours < 1e6:
        raise ValueError()
    return timedelta(hours=hours)


def _whole_number_from_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError() from None
    if value < 1:
        raise ValueError()
    return value


_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off", "none")


def _switch(text: str) -> bool:
    word = text.lower()
    if word not in _ON + _OFF:
        raise ValueError()
    return word in _ON


@dataclass(frozen=True)
class Choice:
    """One of a few words, in any case; gives the word in lower case."""

    options: tuple[str, ...]

    def __call__(self, text: str) -> str:
        word = text.lower()
        if word not in self.options:
            raise ValueError()
        return word

    def words(self) -> str:
        quoted = [f"`{option}`" for option in self.options]
        return ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


_DURATION = re.compile(r"(\d+)(s|min|h|d)")
_DURATION_UNITS = {"s": "seconds", "min": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """`30s`, `15min`, `2h`, `90d` (the durations of settings and command-line flags);
    `ValueError` otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"a duration is a whole number and s, min, h or d (2h), got {text!r}")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError() from None  # the setting's message says what a duration is


def _cron_or_off(text: str) -> str | None:
    """None for `off`; else the text, which must at least have a cron line's five fields (the
    orchestration layer checks the rest with Dagster's own rules)."""
    if text.lower() in _OFF:
        return None
    if len(text.split()) != 5:
        raise ValueError()
    return text


@dataclass(frozen=True)
class MaxStepSeconds:
    """`JOBS_PIPELINE_MAX_STEP_SECONDS`: a limit for every job type (or None: each type's own)
    and limits by job type name."""

    every_type: float | None = None
    by_type: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


def _max_step_seconds(text: str) -> MaxStepSeconds:
    every_type: float | None = None
    by_type: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, equals, seconds = entry.rpartition("=")
        name = name.strip()
        if equals and not name:
            raise ValueError(f"{entry!r} names no job type")
        try:
            limit = _positive_seconds(seconds.strip())
        except ValueError:
            what = f"the limit of {name!r}" if equals else repr(entry)
            raise ValueError(f"{what} is not a positive number of seconds") from None
        if equals:
            by_type[name] = limit
        else:
            every_type = limit
    return MaxStepSeconds(every_type, MappingProxyType(by_type))


# --- the settings ----------------------------------------------------------------------------

PERFDB_URL: Setting[str] = Setting(
    name="PERFDB_URL",
    takes="a SQLAlchemy URL",
    default=f"sqlite:///{PROJECT_ROOT / 'data' / 'perfdb.sqlite'}",
    shown_default="`sqlite:///<repo>/data/perfdb.sqlite`",
    meaning="the performance database (`postgresql://user@host/db` uses psycopg 3)",
    parse=_text,
)
DAGSTER_HOME: Setting[Path] = Setting(
    name="DAGSTER_HOME",
    takes="a folder",
    default=PROJECT_ROOT / ".dagster_home",
    shown_default="`<repo>/.dagster_home`",
    meaning="where Dagster keeps its data; `dagster.yaml` of the repository is linked there",
    parse=Path,
)
DAGSTER_PG_URL: Setting[str | None] = Setting(
    name="DAGSTER_PG_URL",
    takes="a PostgreSQL URL",
    default=None,
    shown_default="unset: SQLite under `$DAGSTER_HOME/storage`",
    meaning="PostgreSQL for Dagster's runs, events and schedules",
    parse=_text,
)
MIN_COVERAGE_PERCENT: Setting[float] = Setting(
    name="JOBS_PIPELINE_MIN_COVERAGE_PERCENT",
    takes="a number from 0 to 100",
    default=50.0,
    shown_default="`50`",
    meaning="a step whose data cover less of its period (in percent) still finishes, with a "
    "comment that says so",
    parse=_percent,
)
ALARM_LOOK_BACK: Setting[timedelta] = Setting(
    name="JOBS_PIPELINE_ALARM_LOOK_BACK_HOURS",
    takes="a positive number of hours",
    default=timedelta(hours=168),
    shown_default="`168` (7 days)",
    meaning="how far an alarm step may read before its period start and after its end to find "
    'the whole of an episode that crosses them (see "Alarm occurrences and periods")',
    parse=_look_back_hours,
)
STEP_PICTURES: Setting[bool] = Setting(
    name="JOBS_PIPELINE_STEP_PICTURES",
    takes="`on` or `off` (`1`, `true`, `yes`; `0`, `false`, `no`)",
    default=False,
    shown_default="`off` (`on` in the demo)",
    meaning="alarm steps draw what they looked at on Dagster's step page (about 0.1-0.2 s a "
    "step, more than the rest of a light step)",
    parse=_switch,
)
EXECUTION_PROFILES = Choice(("in_process", "multiprocess", "celery"))
EXECUTION: Setting[str] = Setting(
    name="JOBS_PIPELINE_EXECUTION",
    takes=EXECUTION_PROFILES.words(),
    default="in_process",
    shown_default="`in_process`",
    meaning='execution profile of every run (see "Execution profiles")',
    parse=EXECUTION_PROFILES,
)
HEAVY_EXECUTION: Setting[str | None] = Setting(
    name="JOBS_PIPELINE_HEAVY_EXECUTION",
    takes=EXECUTION_PROFILES.words(),
    default=None,
    shown_default="`$JOBS_PIPELINE_EXECUTION`",
    meaning="execution profile of job types that declare heavy steps",
    parse=EXECUTION_PROFILES,
)
MAX_CONCURRENT_STEPS: Setting[int] = Setting(
    name="JOBS_PIPELINE_MAX_CONCURRENT_STEPS",
    takes="a whole number >= 1",
    default=os.cpu_count() or 1,
    shown_default="number of cores",
    meaning="steps a `multiprocess` run executes at once",
    parse=_whole_number_from_one,
)
CELERY_BROKER: Setting[str] = Setting(
    name="JOBS_PIPELINE_CELERY_BROKER",
    takes="a Celery broker URL",
    default="pyamqp://guest:guest@127.0.0.1:5672//",
    shown_default="`pyamqp://guest:guest@127.0.0.1:5672//`",
    meaning="broker of the `celery` profile (executor and workers)",
    parse=_text,
)
CELERY_BACKEND: Setting[str] = Setting(
    name="JOBS_PIPELINE_CELERY_BACKEND",
    takes="a Celery result backend URL",
    default="rpc://",
    shown_default="`rpc://`",
    meaning="Celery result backend",
    parse=_text,
)
CELERY_QUEUE: Setting[str] = Setting(
    name="JOBS_PIPELINE_CELERY_QUEUE",
    takes="a queue name",
    default="dagster",
    shown_default="`dagster`",
    meaning="the Celery queue of this deployment's steps",
    parse=_text,
)
RUN_WORKER_STARTS = Choice(("forkserver", "spawn"))
RUN_WORKERS: Setting[str] = Setting(
    name="JOBS_PIPELINE_RUN_WORKERS",
    takes=RUN_WORKER_STARTS.words(),
    default="forkserver",
    shown_default="`forkserver`",
    meaning="how a code server starts run workers: forked from a process that imported the "
    "project once, or Dagster's own `spawn` (`orchestration/run_workers.py`)",
    parse=RUN_WORKER_STARTS,
)
LOG_LEVELS = Choice(("quiet", "debug", "info", "warning", "error", "critical"))
LOG_LEVEL: Setting[str] = Setting(
    name="JOBS_PIPELINE_LOG_LEVEL",
    takes=LOG_LEVELS.words(),
    default="quiet",
    shown_default="`quiet`",
    meaning="what the daemon and runs print on the console: `quiet` leaves out the daemon's "
    "routine sensor-tick lines, `debug` and `info` keep them; runs log at this level (`info` "
    "for `quiet`)",
    parse=LOG_LEVELS,
)
KEEP_FINISHED: Setting[timedelta] = Setting(
    name="JOBS_PIPELINE_KEEP_FINISHED",
    takes="a duration (`30s`, `15min`, `2h`, `90d`)",
    default=timedelta(days=90),
    shown_default="`90d`",
    meaning="housekeeping removes Finished jobs this long after they ended",
    parse=_duration,
)
KEEP_FAILED: Setting[timedelta] = Setting(
    name="JOBS_PIPELINE_KEEP_FAILED",
    takes="a duration (`30s`, `15min`, `2h`, `90d`)",
    default=timedelta(days=365),
    shown_default="`365d`",
    meaning="housekeeping removes Failed jobs this long after they ended",
    parse=_duration,
)
# Early morning UTC, after the night's scheduled jobs have usually ended.
DEFAULT_HOUSEKEEPING_CRON = "30 3 * * *"
HOUSEKEEPING_SCHEDULE: Setting[str | None] = Setting(
    name="JOBS_PIPELINE_HOUSEKEEPING_SCHEDULE",
    takes="a cron line (`30 3 * * *`) or `off`",
    default=DEFAULT_HOUSEKEEPING_CRON,
    shown_default="`30 3 * * *`",
    meaning="when the daily housekeeping run starts (UTC); `off` turns it off",
    parse=_cron_or_off,
)
MAX_STEP_SECONDS: Setting[MaxStepSeconds] = Setting(
    name="JOBS_PIPELINE_MAX_STEP_SECONDS",
    takes="seconds for every job type and/or NAME=SECONDS entries, comma-separated",
    default=MaxStepSeconds(),
    shown_default="each type's `_max_step_seconds` (1 h)",
    meaning="how long a step may run before the reconciler terminates its run and fails it "
    "`timed out after ...` (`3600, Data Import=86400`)",
    parse=_max_step_seconds,
)
STEP_PICKUP_SECONDS: Setting[float] = Setting(
    name="JOBS_PIPELINE_STEP_PICKUP_SECONDS",
    takes="a positive number of seconds",
    default=600.0,
    shown_default="`600`",
    meaning="how long a run's steps may wait, none running, for a worker to pick one up (a "
    "Celery queue without workers) before they fail",
    parse=_positive_seconds,
)
HEARTBEAT_SECONDS: Setting[float] = Setting(
    name="JOBS_PIPELINE_HEARTBEAT_SECONDS",
    takes="a positive number of seconds",
    default=10.0,
    shown_default="`10`",
    meaning="how often a run beats on the job it holds",
    parse=_positive_seconds,
)
HEARTBEAT_SILENCE_SECONDS: Setting[float] = Setting(
    name="JOBS_PIPELINE_HEARTBEAT_SILENCE_SECONDS",
    takes="a positive number of seconds",
    default=60.0,
    shown_default="`60`",
    meaning="after how long without a beat the reconciler presumes a run dead and fails its job",
    parse=_positive_seconds,
)
QUEUED_WARNING_SECONDS: Setting[float] = Setting(
    name="JOBS_PIPELINE_QUEUED_WARNING_SECONDS",
    takes="a positive number of seconds",
    default=300.0,
    shown_default="`300`",
    meaning="after how long a Queued job that no run has taken is worth a warning (reconciler, "
    "`job watch`)",
    parse=_positive_seconds,
)

SETTINGS: tuple[Setting[Any], ...] = (
    PERFDB_URL,
    DAGSTER_HOME,
    DAGSTER_PG_URL,
    MIN_COVERAGE_PERCENT,
    ALARM_LOOK_BACK,
    STEP_PICTURES,
    EXECUTION,
    HEAVY_EXECUTION,
    MAX_CONCURRENT_STEPS,
    CELERY_BROKER,
    CELERY_BACKEND,
    CELERY_QUEUE,
    RUN_WORKERS,
    LOG_LEVEL,
    KEEP_FINISHED,
    KEEP_FAILED,
    HOUSEKEEPING_SCHEDULE,
    MAX_STEP_SECONDS,
    STEP_PICKUP_SECONDS,
    HEARTBEAT_SECONDS,
    HEARTBEAT_SILENCE_SECONDS,
    QUEUED_WARNING_SECONDS,
)


def markdown_table() -> str:
    """README's configuration table."""
    lines = ["| variable | value | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{s.name}` | {s.takes} | {s.shown_default} | {s.meaning} |" for s in SETTINGS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jobs_pipeline.settings",
        description="The environment settings of jobs_pipeline.",
    )
    parser.add_argument(
        "--markdown", action="store_true", required=True, help="print README's table of them"
    )
    parser.parse_args(argv)
    print(markdown_table(), end="")  # the command's output, not a log line


if __name__ == "__main__":
    main()
