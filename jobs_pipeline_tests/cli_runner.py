"""Runs `jobs-pipeline` commands in-process for the CLI tests: `Cli` calls `main([...])` on one
database and checks the exit code, the output and the one line on stderr of a failure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from jobs_pipeline.cli import main


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = main(["--db", self.url, *args])
        out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert (result.code, result.err) == (0, ""), result
        return result

    def rejects(self, *args: str, naming: str) -> Result:
        """Runs a command that must fail with exit code 2 and one stderr line with `naming`."""
        return self.fails(*args, naming=naming, code=2)

    def fails(self, *args: str, naming: str, code: int = 1) -> Result:
        """Runs a command that must fail with `code` and one stderr line with `naming`."""
        result = self(*args)
        assert result.code == code, (args, result)
        assert result.out == "", (args, result)
        assert result.err.endswith("\n") and result.err.count("\n") == 1, (args, result.err)
        assert naming in result.err, (args, result.err)
        return result
