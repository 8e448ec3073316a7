"""How often a run holding a job beats, and after how long a silence the reconciler takes it for
dead. The beat itself is one guarded write (`perfdb/liveness.py`); the thread that repeats it
lives in `jobs/heartbeat_thread.py`."""

from __future__ import annotations

import os

HEARTBEAT_SECONDS_ENV = "JOBS_PIPELINE_HEARTBEAT_SECONDS"
HEARTBEAT_SILENCE_ENV = "JOBS_PIPELINE_HEARTBEAT_SILENCE_SECONDS"
DEFAULT_HEARTBEAT_SECONDS = 10.0
DEFAULT_HEARTBEAT_SILENCE_SECONDS = 60.0


def seconds_from_env(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {text!r}")
    return value


def heartbeat_seconds() -> float:
    """How often a holding run beats (`JOBS_PIPELINE_HEARTBEAT_SECONDS`, default 10 s)."""
    return seconds_from_env(HEARTBEAT_SECONDS_ENV, DEFAULT_HEARTBEAT_SECONDS)


def heartbeat_silence_seconds() -> float:
    """After how long without a beat a holder is presumed dead
    (`JOBS_PIPELINE_HEARTBEAT_SILENCE_SECONDS`, default 60 s)."""
    return seconds_from_env(HEARTBEAT_SILENCE_ENV, DEFAULT_HEARTBEAT_SILENCE_SECONDS)
