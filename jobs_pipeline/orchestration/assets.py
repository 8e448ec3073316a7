"""What jobs read and write, as external assets in Dagster's catalog, and the materializations a
run reports for what its steps wrote.

One asset per feature (`features/<name>`: measured ones in the group `measured_features`,
derived ones in `derived_features`, depending on the features their expression reads), one per
alarm (`alarm_occurrences/alarm_<id>`, depending on the feature the alarm reads) and one for the
files that Data Import jobs load (`feature_imports`, upstream of every measured feature). Objects
are no part of the keys: a fleet of thousands of objects has as many assets as it has features
and alarms, and each materialization names its objects in its metadata.

The specs are read from the performance database when the code location loads; a feature or
alarm defined later shows up after a reload of the code location (its materializations are
recorded before that all the same). A database that is missing, empty or unreachable gives no
assets and a warning, never a code location that fails to load.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Sequence

import dagster as dg
from sqlalchemy.engine import make_url

from jobs_pipeline.calc import DateTimeRange
from jobs_pipeline.jobs.base import StepWrite
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.engine import (
    create_perfdb_engine,
    default_url,
    missing_sqlite_file,
    redact,
)
from jobs_pipeline.perfdb.records import AlarmDefinition, DerivedFeature, Feature
from jobs_pipeline.perfdb.states import JobState

logger = logging.getLogger(__name__)

FEATURES_PREFIX = "features"
ALARMS_PREFIX = "alarm_occurrences"
IMPORTS_KEY = dg.AssetKey(["feature_imports"])
MEASURED_GROUP = "measured_features"
DERIVED_GROUP = "derived_features"
ALARMS_GROUP = "alarm_occurrences"
IMPORTS_GROUP = "imports"
# A code location must load even when the database's host does not answer.
CONNECT_TIMEOUT_SECONDS = 5

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def _asset_name(name: str) -> str:
    """A key segment for a feature name: the name itself when Dagster-safe, else its safe
    characters and a checksum of the whole name (`wind speed` and `wind-speed` stay apart)."""
    if _SAFE_NAME.match(name):
        return name
    readable = _UNSAFE.sub("_", name).strip("_") or "feature"
    return f"{readable}_{zlib.crc32(name.encode()):08x}"


def feature_asset_key(feature_name: str) -> dg.AssetKey:
    return dg.AssetKey([FEATURES_PREFIX, _asset_name(feature_name)])


def alarm_asset_key(alarm_id: int) -> dg.AssetKey:
    # By id: an alarm's name may change, its manufacturer id does not.
    return dg.AssetKey([ALARMS_PREFIX, f"alarm_{alarm_id}".replace("-", "minus_")])


def catalog_asset_specs(
    features: Sequence[Feature],
    derived: Sequence[DerivedFeature],
    alarms: Sequence[AlarmDefinition],
) -> list[dg.AssetSpec]:
    """The external assets of a catalog, with their lineage."""
    definitions = {definition.feature.id: definition for definition in derived}
    specs = [
        dg.AssetSpec(
            IMPORTS_KEY,
            description="Files of measured values loaded by Data Import jobs",
            group_name=IMPORTS_GROUP,
        )
    ]
    for feature in features:
        metadata = {
            "feature": feature.name,
            "unit": feature.unit,
            "sampling_period_seconds": int(feature.sampling_period.total_seconds()),
        }
        definition = definitions.get(feature.id)
        if definition is None:
            specs.append(
                dg.AssetSpec(
                    feature_asset_key(feature.name),
                    description=f"Measured values of {feature.name}",
                    group_name=MEASURED_GROUP,
                    deps=[IMPORTS_KEY],
                    metadata=metadata,
                )
            )
            continue
        specs.append(
            dg.AssetSpec(
                feature_asset_key(feature.name),
                description=f"{feature.name} = {definition.expression}",
                group_name=DERIVED_GROUP,
                deps=list(dict.fromkeys(feature_asset_key(i.name) for i in definition.inputs)),
                metadata={**metadata, "expression": definition.expression},
            )
        )
    for alarm in alarms:
        rule = f"{alarm.feature.name} {alarm.operator} {alarm.threshold:g}"
        specs.append(
            dg.AssetSpec(
                alarm_asset_key(alarm.id),
                description=f"Occurrences of alarm {alarm.id} {alarm.name}: {rule}",
                group_name=ALARMS_GROUP,
                deps=[feature_asset_key(alarm.feature.name)],
                metadata={"alarm_id": alarm.id, "alarm": alarm.name, "rule": rule},
            )
        )
    return specs


def load_asset_specs(url: str | None = None) -> list[dg.AssetSpec]:
    """The external assets of the performance database at `url` (default `PERFDB_URL`); none,
    with a warning, when it is missing, has no schema or cannot be read."""
    url = url or default_url()
    if missing_sqlite_file(url):
        logger.warning("no performance database at %s: no assets in the catalog", redact(url))
        return []
    options = {}
    if make_url(url).get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    perfdb = PerfDB(create_perfdb_engine(url, **options))
    try:
        if not perfdb.has_schema():
            logger.warning("performance database %s has no schema: no assets", redact(url))
            return []
        features = perfdb.catalog.list_features()
        derived = perfdb.derived.list()
        alarms = perfdb.catalog.list_alarms()
    except Exception as error:
        logger.warning(
            "performance database %s not readable, no assets in the catalog: %s: %s",
            redact(url),
            type(error).__name__,
            error,
        )
        return []
    finally:
        perfdb.dispose()
    return catalog_asset_specs(features, derived, alarms)


# Materializations name at most this many objects or files (and count the rest).
MAX_NAMED = 20


def _named(names: list[str]) -> str:
    more = len(names) - MAX_NAMED
    return ", ".join(names[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")


def written_asset_key(wrote: StepWrite) -> dg.AssetKey:
    if wrote.feature is not None:
        return feature_asset_key(wrote.feature)
    if wrote.alarm_id is not None:
        return alarm_asset_key(wrote.alarm_id)
    return IMPORTS_KEY


def run_materializations(perfdb: PerfDB, job_id: int, run_id: str) -> list[dg.AssetMaterialization]:
    """One materialization per asset that the steps this run finished wrote (as their
    `details["wrote"]` say): the objects, feature, alarm or files, the period they cover and
    the rows in all. Steps finished by earlier runs are not counted again."""
    writes: dict[dg.AssetKey, list[StepWrite]] = {}
    for step in perfdb.queue.get_steps(job_id):
        wrote = (step.details or {}).get("wrote")
        if step.run_id != run_id or step.state != JobState.FINISHED or not wrote:
            continue
        write = StepWrite.from_details(wrote)
        writes.setdefault(written_asset_key(write), []).append(write)
    return [_materialization(job_id, key, items) for key, items in writes.items()]


def _materialization(
    job_id: int, key: dg.AssetKey, writes: list[StepWrite]
) -> dg.AssetMaterialization:
    first = writes[0]
    metadata: dict[str, dg.RawMetadataValue] = {"job_id": job_id, "steps": len(writes)}
    objects = sorted({write.object_name for write in writes if write.object_name is not None})
    if objects:
        metadata["objects"] = _named(objects)
        metadata["object_count"] = len(objects)
    if first.feature is not None:
        metadata["feature"] = first.feature
    elif first.alarm_id is not None:
        metadata["alarm_id"] = first.alarm_id
    else:
        metadata["files"] = _named([write.file or "" for write in writes])
    periods = [write.period for write in writes if write.period is not None]
    if periods:
        start = min(period.start for period in periods)
        metadata["period"] = str(DateTimeRange(start, max(period.end for period in periods)))
    metadata["rows"] = sum(write.rows for write in writes)
    return dg.AssetMaterialization(asset_key=key, metadata=metadata)


def log_run_materializations(context: dg.OpExecutionContext, perfdb: PerfDB, job_id: int) -> None:
    """Reports what this run wrote, once per asset: called by the op that ends the run's work
    on the job (a materialization per step would add a fifth event to every step, a quarter
    more of Dagster's cost per step)."""
    for materialization in run_materializations(perfdb, job_id, context.run_id):
        context.log_event(materialization)
