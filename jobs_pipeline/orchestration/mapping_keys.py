"""Mapping keys of the step ops: readable in the UI, and the step id can be read back."""

from __future__ import annotations

import re

from jobs_pipeline.perfdb.records import Step

_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")
_STEP_KEY = re.compile(r"^s(\d+)(?:_|$)")
_STEP_OP_KEY = re.compile(r"^run_step\[(s\d+[A-Za-z0-9_]*)\]$")


def mapping_key(step: Step) -> str:
    """Readable, unique and Dagster-safe: `s12_LAN_01_1001` for step 12, LAN-01, alarm 1001;
    `s13_INV_01_dc_power` for a step of a feature without alarm; `s14` for a step of neither."""
    parts = [f"s{step.id}", step.object_name or ""]
    if step.alarm_id is not None:
        parts.append(str(step.alarm_id))
    elif step.feature_name:
        parts.append(step.feature_name)
    return _UNSAFE.sub("_", "_".join(parts)).strip("_")


def step_id_from_mapping_key(key: str) -> int:
    match = _STEP_KEY.match(key)
    if match is None:
        raise ValueError(f"mapping key {key!r} does not start with a step id (s<id>_...)")
    return int(match.group(1))


def step_id_from_step_key(step_key: str) -> int | None:
    """The job step behind a Dagster step key such as `run_step[s12_LAN_01_1001]`, if any."""
    match = _STEP_OP_KEY.match(step_key)
    return step_id_from_mapping_key(match.group(1)) if match else None
