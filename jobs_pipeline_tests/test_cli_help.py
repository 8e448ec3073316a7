"""Every command and every option of `jobs-pipeline` says what it is for in `--help`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from jobs_pipeline.cli import build_parser


def commands(
    parser: argparse.ArgumentParser, path: str = "jobs-pipeline"
) -> Iterator[tuple[str, argparse.ArgumentParser, argparse.Action | None]]:
    """(command path, its parser, the subparsers action that lists it) for every command."""
    yield path, parser, None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                assert helps.get(name), f"'{path} {name}' has no help line in '{path} --help'"
                yield from commands(child, f"{path} {name}")


def test_every_command_and_option_has_help_text() -> None:
    missing = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, parser, _ in commands(build_parser(["job", "create", "--help"]))
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not (action.help or "").strip()
    ]
    assert missing == []
