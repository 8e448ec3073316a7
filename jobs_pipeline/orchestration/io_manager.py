"""Step ids travel between ops through their mapping keys, not through storage.

The performance database already knows every step, and a mapped output's key starts with its
step id (`s12_LAN_01_1001`). The plan and step ops pass Nothing (a step op reads its step id
from its own mapping key), so this manager only sees the summary's output; it writes nothing,
and an input, should an op ever take one, is rebuilt from the upstream key: a re-execution in
another process or on another machine needs no files of its parent run.
"""

import re

import dagster as dg

from jobs_pipeline.orchestration.mapping_keys import step_id_from_mapping_key

_MAPPED_STEP_KEY = re.compile(r"^[^\[]+\[([A-Za-z0-9_]+)\]$")


class StepIdIOManager(dg.ConfigurableIOManager):
    """Stores nothing; loads a step id from the upstream output's mapping key."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        pass  # the performance database holds every step's state and results

    def load_input(self, context: dg.InputContext) -> int:
        upstream = context.upstream_output
        key = upstream.mapping_key if upstream is not None else None
        if key is None and upstream is not None:
            # A collected (fan-in) input: the key is only in the upstream step key, `op[key]`.
            match = _MAPPED_STEP_KEY.match(upstream.step_key)
            key = match.group(1) if match else None
        if key is None:
            raise ValueError(f"input {context.name!r} of {context.op_def.name} has no mapping key")
        return step_id_from_mapping_key(key)
