"""What the command prints and how it ends: bad input as one line and exit code 2, tables,
JSON on stdout, and the exit code of each kind of failure."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from jobs_pipeline.perfdb.errors import InputError, PerfDBError
from jobs_pipeline.settings import SettingError


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class Exit(Exception):
    """Ends the command with `code`: what people need to know was printed already."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


PROGRAM = "jobs-pipeline"


def error_line(message: object) -> str:
    """The one line every failure prints on stderr, whatever failed."""
    return f"{PROGRAM}: error: {message}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 occurrence`, `2 occurrences`, `0 times`."""
    return f"{count} {word if count == 1 else many or word + 's'}"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line that names the problem (and the command) instead of argparse's usage block.
        command = self.prog.removeprefix(PROGRAM).strip()
        raise UsageError(f"{command}: {message}" if command else message)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON on stdout (and nothing else there)"
    )


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if cell is None else str(cell)) for cell in row] for row in rows]
    widths = [
        max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)
    ]
    print("  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def short_time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def seconds_text(period: timedelta) -> str:
    return f"{period.total_seconds():g} s"


def run_command(args: argparse.Namespace) -> int:
    """Runs the command's handler; the exit code, with one line on stderr for a failure."""
    try:
        args.handler(args)
    except Exit as done:
        return done.code
    except (UsageError, InputError, SettingError) as error:  # a bad setting is bad input too
        print(error_line(error), file=sys.stderr)
        return 2
    except PerfDBError as error:
        print(error_line(error), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        logging.getLogger("jobs_pipeline.cli").debug("unexpected failure", exc_info=True)
        print(error_line(f"{type(error).__name__}: {error}"), file=sys.stderr)
        return 1
    return 0
