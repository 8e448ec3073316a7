"""Objects, features and alarm definitions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import InputError, NotFound
from jobs_pipeline.perfdb.models import (
    ALARM_OPERATORS,
    AlarmDefinitionRow,
    FeatureRow,
    FeatureValueRow,
    ObjectRow,
    table_of,
)
from jobs_pipeline.perfdb.records import AlarmDefinition, Feature, FeatureOverview

OBJECTS = table_of(ObjectRow)
FEATURES = table_of(FeatureRow)
ALARMS = table_of(AlarmDefinitionRow)
_VALUES = table_of(FeatureValueRow)

DEFAULT_SAMPLING_PERIOD = timedelta(minutes=10)


def _feature(row: sa.Row) -> Feature:  # type: ignore[type-arg]
    return Feature(
        id=row.id,
        name=row.name,
        unit=row.unit,
        sampling_period=timedelta(seconds=row.sampling_period_seconds),
    )


_SELECT_ALARMS = sa.select(
    ALARMS.c.id,
    ALARMS.c.name,
    ALARMS.c.operator,
    ALARMS.c.threshold,
    ALARMS.c.clear_threshold,
    ALARMS.c.min_duration_seconds,
    FEATURES.c.id.label("feature_id"),
    FEATURES.c.name.label("feature_name"),
    FEATURES.c.unit,
    FEATURES.c.sampling_period_seconds,
).join_from(ALARMS, FEATURES, ALARMS.c.feature_id == FEATURES.c.id)


def _alarm(row: sa.Row) -> AlarmDefinition:  # type: ignore[type-arg]
    return AlarmDefinition(
        id=row.id,
        name=row.name,
        feature=Feature(
            id=row.feature_id,
            name=row.feature_name,
            unit=row.unit,
            sampling_period=timedelta(seconds=row.sampling_period_seconds),
        ),
        operator=row.operator,
        threshold=row.threshold,
        clear_threshold=row.clear_threshold,
        min_duration=timedelta(seconds=row.min_duration_seconds),
    )


def sampling_period_seconds(period: timedelta) -> int:
    """The whole seconds a feature's sampling period is stored as; `InputError` for a period
    that is not a positive whole number of seconds."""
    seconds = period.total_seconds()
    if not seconds > 0 or seconds != int(seconds):
        raise InputError(
            f"sampling period must be a positive whole number of seconds, got {seconds:g}"
        )
    return int(seconds)


def check_alarm_rule(
    operator: str, threshold: float, clear_threshold: float | None, min_duration: timedelta
) -> None:
    """Rejects alarm rules the threshold calculation cannot honour, naming the problem."""
    if operator not in ALARM_OPERATORS:
        raise InputError(
            f"unknown operator {operator!r}: expected one of {' '.join(ALARM_OPERATORS)}"
        )
    if not math.isfinite(threshold):
        raise InputError(f"threshold must be a finite number, got {threshold}")
    if clear_threshold is not None:
        if not math.isfinite(clear_threshold):
            raise InputError(f"clear threshold must be a finite number, got {clear_threshold}")
        if operator in (">", ">=") and clear_threshold > threshold:
            raise InputError(
                f"clear threshold {clear_threshold} must be <= the threshold {threshold} "
                f"for operator {operator!r}"
            )
        if operator in ("<", "<=") and clear_threshold < threshold:
            raise InputError(
                f"clear threshold {clear_threshold} must be >= the threshold {threshold} "
                f"for operator {operator!r}"
            )
        if operator in ("==", "!="):
            raise InputError(f"a clear threshold does not apply to operator {operator!r}")
    if min_duration < timedelta(0):
        raise InputError(f"minimum duration must not be negative, got {min_duration}")


class Catalog:
    """Owns `objects`, `features` and `alarm_definitions`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def ensure_objects(self, names: Iterable[str]) -> dict[str, int]:
        with begin(self.engine) as connection:
            return ensure_named(connection, OBJECTS, names)[0]

    def ensure_feature(
        self,
        name: str,
        *,
        unit: str = "",
        sampling_period: timedelta = DEFAULT_SAMPLING_PERIOD,
    ) -> Feature:
        """Creates the feature if it is new; an existing one keeps its unit and period."""
        seconds = sampling_period_seconds(sampling_period)
        with begin(self.engine) as connection:
            row = connection.execute(sa.select(FEATURES).where(FEATURES.c.name == name)).first()
            if row is None:
                connection.execute(
                    FEATURES.insert().values(name=name, unit=unit, sampling_period_seconds=seconds)
                )
                row = connection.execute(sa.select(FEATURES).where(FEATURES.c.name == name)).one()
            return _feature(row)

    def object_ids(self, names: Sequence[str]) -> dict[str, int]:
        """Ids of the named objects; `NotFound` lists every unknown name."""
        with begin(self.engine) as connection:
            return lookup_object_ids(connection, names)

    def list_objects(self) -> list[str]:
        with begin(self.engine) as connection:
            return list(connection.scalars(sa.select(OBJECTS.c.name).order_by(OBJECTS.c.name)))

    def get_feature(self, name: str) -> Feature:
        with begin(self.engine) as connection:
            row = connection.execute(sa.select(FEATURES).where(FEATURES.c.name == name)).first()
        if row is None:
            raise NotFound(f"unknown feature {name!r}")
        return _feature(row)

    def list_features(self) -> list[Feature]:
        with begin(self.engine) as connection:
            return [
                _feature(row)
                for row in connection.execute(sa.select(FEATURES).order_by(FEATURES.c.name))
            ]

    def set_sampling_period(self, name: str, sampling_period: timedelta) -> tuple[Feature, Feature]:
        """Changes a feature's sampling period; returns the feature before and after. Raises
        `NotFound` for an unknown feature and `InputError` for a period that is not a positive
        whole number of seconds."""
        seconds = sampling_period_seconds(sampling_period)
        with begin(self.engine) as connection:
            row = connection.execute(sa.select(FEATURES).where(FEATURES.c.name == name)).first()
            if row is None:
                raise NotFound(f"unknown feature {name!r}")
            connection.execute(
                FEATURES.update()
                .where(FEATURES.c.id == row.id)
                .values(sampling_period_seconds=seconds)
            )
            after = connection.execute(sa.select(FEATURES).where(FEATURES.c.id == row.id)).one()
        return _feature(row), _feature(after)

    def feature_overview(self) -> list[FeatureOverview]:
        """Every feature by name with what is stored of it: objects, samples, first and last
        timestamp (None without samples). One grouped query over the stored values."""
        query = (
            sa.select(
                FEATURES,
                sa.func.count(sa.distinct(_VALUES.c.object_id)).label("objects"),
                sa.func.count(_VALUES.c.timestamp).label("samples"),
                sa.func.min(_VALUES.c.timestamp).label("first"),
                sa.func.max(_VALUES.c.timestamp).label("last"),
            )
            .join_from(FEATURES, _VALUES, _VALUES.c.feature_id == FEATURES.c.id, isouter=True)
            .group_by(*FEATURES.c)
            .order_by(FEATURES.c.name)
        )
        with begin(self.engine) as connection:
            return [
                FeatureOverview(
                    feature=_feature(row),
                    objects=row.objects,
                    samples=row.samples,
                    first=row.first,
                    last=row.last,
                )
                for row in connection.execute(query)
            ]

    def define_alarm(
        self,
        *,
        alarm_id: int,
        name: str,
        feature: str,
        operator: str,
        threshold: float,
        clear_threshold: float | None = None,
        min_duration: timedelta = timedelta(0),
    ) -> AlarmDefinition:
        """Creates or replaces the definition of a manufacturer alarm id."""
        check_alarm_rule(operator, threshold, clear_threshold, min_duration)
        values = {
            "name": name,
            "operator": operator,
            "threshold": threshold,
            "clear_threshold": clear_threshold,
            "min_duration_seconds": int(min_duration.total_seconds()),
        }
        with begin(self.engine) as connection:
            feature_id = connection.execute(
                sa.select(FEATURES.c.id).where(FEATURES.c.name == feature)
            ).scalar()
            if feature_id is None:
                raise NotFound(f"unknown feature {feature!r}")
            values["feature_id"] = feature_id
            changed = connection.execute(
                ALARMS.update().where(ALARMS.c.id == alarm_id).values(**values)
            ).rowcount
            if not changed:
                connection.execute(ALARMS.insert().values(id=alarm_id, **values))
            return _alarm(connection.execute(_SELECT_ALARMS.where(ALARMS.c.id == alarm_id)).one())

    def alarms(self, alarm_ids: Sequence[int]) -> dict[int, AlarmDefinition]:
        """Definitions of the given ids; `NotFound` lists every unknown id."""
        with begin(self.engine) as connection:
            return lookup_alarms(connection, alarm_ids)

    def list_alarms(self) -> list[AlarmDefinition]:
        with begin(self.engine) as connection:
            return [_alarm(row) for row in connection.execute(_SELECT_ALARMS.order_by(ALARMS.c.id))]


def ensure_named(
    connection: Connection,
    table: sa.Table,
    names: Iterable[str],
    new_values: Mapping[str, Any] | None = None,
) -> tuple[dict[str, int], list[str]]:
    """Ids by name for `objects` or `features`, inserting the missing names (with `new_values`
    for their other columns). Returns the ids and the names that were created."""
    wanted = sorted(set(names))
    ids: dict[str, int] = {}
    for chunk in _chunks(wanted, 500):
        ids.update(
            connection.execute(
                sa.select(table.c.name, table.c.id).where(table.c.name.in_(chunk))
            ).all()
        )
    missing = [name for name in wanted if name not in ids]
    if missing:
        extra = dict(new_values or {})
        connection.execute(table.insert(), [{**extra, "name": name} for name in missing])
        for chunk in _chunks(missing, 500):
            ids.update(
                connection.execute(
                    sa.select(table.c.name, table.c.id).where(table.c.name.in_(chunk))
                ).all()
            )
    return ids, missing


def lookup_object_ids(connection: Connection, names: Sequence[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for chunk in _chunks(sorted(set(names)), 500):
        ids.update(
            connection.execute(
                sa.select(OBJECTS.c.name, OBJECTS.c.id).where(OBJECTS.c.name.in_(chunk))
            ).all()
        )
    unknown = [name for name in names if name not in ids]
    if unknown:
        raise NotFound("unknown object names: " + listed(repr(name) for name in unknown))
    return ids


def lookup_alarms(connection: Connection, alarm_ids: Sequence[int]) -> dict[int, AlarmDefinition]:
    found = {
        row.id: _alarm(row)
        for row in connection.execute(_SELECT_ALARMS.where(ALARMS.c.id.in_(set(alarm_ids))))
    }
    unknown = [alarm_id for alarm_id in alarm_ids if alarm_id not in found]
    if unknown:
        raise NotFound("unknown alarm ids: " + listed(str(alarm_id) for alarm_id in unknown))
    return found


LISTED_NAMES = 10


def listed(names: Iterable[str], limit: int = LISTED_NAMES) -> str:
    """The first few names and how many more: an error about 180,000 names stays one line."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
