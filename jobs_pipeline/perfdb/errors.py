"""Errors of the performance database layer.

`InputError` and its subclasses mean the caller asked for something wrong (the CLI exits 2);
anything else is a failure of the system (exit 1). Each docstring is the default message.
"""

from __future__ import annotations


class PerfDBError(Exception):
    """The performance database failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class InputError(PerfDBError):
    """The request is invalid."""


class NotFound(InputError):
    """No such record."""


class InvalidParameters(InputError):
    """The job parameters are invalid."""


class InvalidTransition(InputError):
    """The record is not in a state that allows this transition."""


class ImportFailed(InputError):
    """The file could not be imported; nothing was written."""


class ConnectionFailed(PerfDBError):
    """The performance database cannot be reached."""
