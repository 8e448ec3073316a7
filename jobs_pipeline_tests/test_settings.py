"""The settings table: README shows it, only `settings.py` reads the environment, and each
setting parses what it documents and names the variable and the text it refuses."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import jobs_pipeline
from jobs_pipeline import settings
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.settings import SETTINGS, Setting, SettingError, markdown_table
from jobs_pipeline_tests.cli_runner import Cli

PACKAGE = Path(jobs_pipeline.__file__).parent
README = PACKAGE.parent / "README.md"


def readme_configuration_table() -> str:
    text = README.read_text()
    section = text[text.index("\n## Configuration\n") :]
    lines = section.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("|"))
    end = next(index for index in range(start, len(lines)) if not lines[index].startswith("|"))
    return "\n".join(lines[start:end]) + "\n"


def test_readme_shows_the_table_of_settings_py() -> None:
    assert readme_configuration_table() == markdown_table(), (
        "README's configuration table differs from jobs_pipeline/settings.py: paste the output "
        "of `python -m jobs_pipeline.settings --markdown`"
    )


def test_the_command_prints_the_table() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "jobs_pipeline.settings", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == markdown_table()


def _reads_the_environment(tree: ast.AST) -> list[int]:
    """Lines that read `os.environ` or call `os.getenv` (writing `os.environ[...]` is allowed)."""
    written = {
        id(target.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Subscript)
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
        and node.attr in ("environ", "getenv", "environb")
        and id(node) not in written
    ]


def test_only_settings_py_reads_the_environment() -> None:
    readers = {
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in PACKAGE.rglob("*.py")
        if path != PACKAGE / "settings.py"
        for line in _reads_the_environment(ast.parse(path.read_text()))
    }
    assert readers == set(), "read settings through jobs_pipeline/settings.py"


def test_every_variable_the_package_names_is_a_setting() -> None:
    names = {setting.name for setting in SETTINGS}
    assert len(names) == len(SETTINGS)
    mentioned = {
        name
        for path in PACKAGE.rglob("*.py")
        for name in re.findall(r"\bJOBS_PIPELINE_[A-Z_]+\b", path.read_text())
    }
    assert mentioned - names == set()


def test_unset_or_blank_gives_the_default() -> None:
    for setting in SETTINGS:
        assert setting.read({}) == setting.default
        assert setting.read({setting.name: "  "}) == setting.default


@pytest.mark.parametrize(
    ("setting", "text", "value"),
    [
        (settings.MIN_COVERAGE_PERCENT, "95", 95.0),
        (settings.MIN_COVERAGE_PERCENT, "0", 0.0),
        (settings.ALARM_LOOK_BACK, "1.5", timedelta(minutes=90)),
        (settings.STEP_PICTURES, "Yes", True),
        (settings.STEP_PICTURES, "off", False),
        (settings.EXECUTION, " Celery ", "celery"),
        (settings.MAX_CONCURRENT_STEPS, "3", 3),
        (settings.LOG_LEVEL, "debug", "debug"),
        (settings.KEEP_FINISHED, "15min", timedelta(minutes=15)),
        (settings.HOUSEKEEPING_SCHEDULE, "0 4 * * 1", "0 4 * * 1"),
        (settings.HOUSEKEEPING_SCHEDULE, "OFF", None),
        (settings.HEARTBEAT_SECONDS, "0.5", 0.5),
        (settings.DAGSTER_HOME, "/srv/dagster", Path("/srv/dagster")),
    ],
)
def test_a_setting_parses_what_it_documents(
    setting: Setting[object], text: str, value: object
) -> None:
    assert setting.read({setting.name: text}) == value


@pytest.mark.parametrize(
    ("setting", "text", "message"),
    [
        (
            settings.MIN_COVERAGE_PERCENT,
            "half",
            "JOBS_PIPELINE_MIN_COVERAGE_PERCENT must be a number from 0 to 100, got 'half'",
        ),
        (
            settings.MIN_COVERAGE_PERCENT,
            "nan",
            "JOBS_PIPELINE_MIN_COVERAGE_PERCENT must be a number from 0 to 100, got 'nan'",
        ),
        (
            settings.HEARTBEAT_SILENCE_SECONDS,
            "-1",
            "JOBS_PIPELINE_HEARTBEAT_SILENCE_SECONDS must be a positive number of seconds, "
            "got '-1'",
        ),
        (
            settings.STEP_PICTURES,
            "maybe",
            "JOBS_PIPELINE_STEP_PICTURES must be `on` or `off` (`1`, `true`, `yes`; `0`, "
            "`false`, `no`), got 'maybe'",
        ),
        (
            settings.KEEP_FAILED,
            "a year",
            "JOBS_PIPELINE_KEEP_FAILED must be a duration (`30s`, `15min`, `2h`, `90d`), "
            "got 'a year'",
        ),
        (
            settings.LOG_LEVEL,
            "loud",
            "JOBS_PIPELINE_LOG_LEVEL must be `quiet`, `debug`, `info`, `warning`, `error` or "
            "`critical`, got 'loud'",
        ),
        (
            settings.HOUSEKEEPING_SCHEDULE,
            "daily",
            "JOBS_PIPELINE_HOUSEKEEPING_SCHEDULE must be a cron line (`30 3 * * *`) or `off`, "
            "got 'daily'",
        ),
    ],
)
def test_a_bad_value_is_named_with_the_variable_and_the_text(
    setting: Setting[object], text: str, message: str
) -> None:
    with pytest.raises(SettingError) as error:
        setting.read({setting.name: text})
    assert str(error.value) == message
    assert isinstance(error.value, ValueError)


def test_a_changed_environment_is_obeyed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.HEARTBEAT_SECONDS.name, "2")
    assert settings.HEARTBEAT_SECONDS.read() == 2.0
    monkeypatch.setenv(settings.HEARTBEAT_SECONDS.name, "3")
    assert settings.HEARTBEAT_SECONDS.read() == 3.0
    monkeypatch.delenv(settings.HEARTBEAT_SECONDS.name)
    assert settings.HEARTBEAT_SECONDS.read() == 10.0


def test_a_bad_setting_makes_a_command_exit_2_with_one_line(
    perfdb: PerfDB,
    perfdb_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    perfdb.catalog.ensure_objects(["LAN-01"])
    perfdb.catalog.ensure_feature("active_power", unit="kW")
    perfdb.catalog.define_alarm(
        alarm_id=101, name="High power", feature="active_power", operator=">", threshold=1.0
    )
    parameters = {
        "object_names": ["LAN-01"],
        "alarm_ids": [101],
        "start": "2024-01-01 00:00:00",
        "end": "2024-01-02 00:00:00",
    }
    job = perfdb.queue.create_job("Alarm Calculation", parameters, queue=True)
    monkeypatch.setenv(settings.QUEUED_WARNING_SECONDS.name, "5 min")
    result = Cli(perfdb_url, capsys)("job", "show", str(job.id))
    assert result.code == 2
    assert result.err == (
        "jobs-pipeline: error: JOBS_PIPELINE_QUEUED_WARNING_SECONDS must be a positive number "
        "of seconds, got '5 min'\n"
    )
