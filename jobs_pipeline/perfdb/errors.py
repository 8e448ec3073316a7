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


class LostOwnership(InvalidTransition):
    """The run no longer holds the job: another run took it over, or it was finalised."""


class JobCanceled(InvalidTransition):
    """The job was canceled: no more of its steps start."""

    def __init__(self, message: str | None = None, *, not_run: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        # The steps this cancel failed without running them; empty when an earlier step start
        # of the same run saw the cancel and failed them already.
        self.not_run = not_run


class DependencyNotFinished(InvalidTransition):
    """A step starts only once the steps it depends on Finished."""


class ImportFailed(InputError):
    """The file could not be imported; nothing was written."""


class ConnectionFailed(PerfDBError):
    """The performance database cannot be reached."""


class ConnectionLost(ConnectionFailed):
    """The connection to the performance database was lost; its transaction was not written."""


class Busy(PerfDBError):
    """The performance database stayed locked by another writer past the busy timeout."""


def is_transient(error: BaseException) -> bool:
    """A failure worth retrying once the database is back: a lost, refused or restarting
    connection, or (SQLite) another writer holding the write lock past the busy timeout, such
    as a long `features import`."""
    import sqlalchemy as sa  # here, so that importing the errors stays cheap

    if isinstance(error, (ConnectionFailed, Busy)):
        return True
    if isinstance(error, sa.exc.DBAPIError):
        # "database is locked" outside `begin()` is the same wait as `Busy`.
        return error.connection_invalidated or isinstance(
            error, (sa.exc.OperationalError, sa.exc.InterfaceError)
        )
    return False
