"""Derived features: their definitions (an expression over other features) and their values.

A definition is checked when it is written: the expression must parse (`calc/expressions.py`),
every name in it must be a feature, and following the inputs of derived inputs must never lead
back to the feature itself (a cycle). The values of a derived feature are rows of
`feature_values` like imported ones; a calculation replaces those of its period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.calc.expressions import ExpressionError, parse_expression
from jobs_pipeline.perfdb.catalog import sampling_period_seconds
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import InputError, NotFound
from jobs_pipeline.perfdb.models import (
    DerivedFeatureInputRow,
    DerivedFeatureRow,
    FeatureRow,
    FeatureValueRow,
    table_of,
)
from jobs_pipeline.perfdb.records import DerivedFeature, Feature

FEATURES = table_of(FeatureRow)
DERIVED = table_of(DerivedFeatureRow)
INPUTS = table_of(DerivedFeatureInputRow)
VALUES = table_of(FeatureValueRow)


class DerivedFeatureCycle(InputError):
    """The derived features would depend on themselves."""


def _features_by_name(connection: Connection, names: Iterable[str]) -> dict[str, Feature]:
    rows = connection.execute(sa.select(FEATURES).where(FEATURES.c.name.in_(set(names))))
    return {row.name: _feature(row) for row in rows}


def _feature(row: sa.Row) -> Feature:  # type: ignore[type-arg]
    return Feature(
        id=row.id,
        name=row.name,
        unit=row.unit,
        sampling_period=timedelta(seconds=row.sampling_period_seconds),
    )


class DerivedFeatures:
    """Owns `derived_features` and `derived_feature_inputs`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def define(
        self,
        name: str,
        expression: str,
        *,
        unit: str | None = None,
        sampling_period: timedelta | None = None,
    ) -> DerivedFeature:
        """Creates or redefines the derived feature `name`. A new one gets `unit` (default
        none) and `sampling_period` (default: that of its first input); a redefinition keeps
        what is not given. Refused (`InputError`, nothing written): an expression that does not
        parse or names no feature, an unknown feature name, a cycle, and a name that holds
        measured values."""
        try:
            parsed = parse_expression(expression)
        except ExpressionError as error:
            raise InputError(f"expression {expression!r}: {error}") from None
        if name in parsed.names:
            raise DerivedFeatureCycle(f"cycle of derived features: {name} -> {name}")
        seconds = None if sampling_period is None else sampling_period_seconds(sampling_period)
        with begin(self.engine) as connection:
            inputs = _features_by_name(connection, parsed.names)
            unknown = [input_name for input_name in parsed.names if input_name not in inputs]
            if unknown:
                raise NotFound(
                    f"expression {expression!r}: unknown feature "
                    + ", ".join(repr(input_name) for input_name in unknown)
                )
            existing = _features_by_name(connection, [name]).get(name)
            if existing is not None:
                self._check_redefinable(connection, existing)
            _check_no_cycle(connection, name, [inputs[input_name] for input_name in parsed.names])
            if existing is None:
                period = seconds or int(inputs[parsed.names[0]].sampling_period.total_seconds())
                feature_id = connection.execute(
                    FEATURES.insert()
                    .values(name=name, unit=unit or "", sampling_period_seconds=period)
                    .returning(FEATURES.c.id)
                ).scalar_one()
            else:
                feature_id = existing.id
                changes: dict[str, object] = {}
                if unit is not None:
                    changes["unit"] = unit
                if seconds is not None:
                    changes["sampling_period_seconds"] = seconds
                if changes:
                    connection.execute(
                        FEATURES.update().where(FEATURES.c.id == feature_id).values(**changes)
                    )
                connection.execute(DERIVED.delete().where(DERIVED.c.feature_id == feature_id))
            connection.execute(
                DERIVED.insert().values(feature_id=feature_id, expression=parsed.text)
            )
            connection.execute(
                INPUTS.insert(),
                [
                    {"feature_id": feature_id, "input_id": inputs[input_name].id}
                    for input_name in parsed.names
                ],
            )
            return _definitions(connection, [feature_id])[feature_id]

    def _check_redefinable(self, connection: Connection, feature: Feature) -> None:
        derived = connection.execute(
            sa.select(DERIVED.c.feature_id).where(DERIVED.c.feature_id == feature.id)
        ).first()
        if derived is not None:
            return
        has_values = connection.execute(
            sa.select(VALUES.c.feature_id).where(VALUES.c.feature_id == feature.id).limit(1)
        ).first()
        if has_values is not None:
            raise InputError(
                f"feature {feature.name!r} holds measured values: give the derived feature "
                f"a name of its own"
            )

    def get(self, name: str) -> DerivedFeature:
        with begin(self.engine, write=False) as connection:
            feature_id = connection.execute(
                sa.select(DERIVED.c.feature_id)
                .join_from(DERIVED, FEATURES, DERIVED.c.feature_id == FEATURES.c.id)
                .where(FEATURES.c.name == name)
            ).scalar()
            if feature_id is None:
                raise NotFound(f"{name!r} is not a derived feature")
            return _definitions(connection, [feature_id])[feature_id]

    def by_names(self, names: Sequence[str]) -> dict[str, DerivedFeature]:
        """Definitions of the named derived features; `NotFound` names every feature that is
        unknown or not derived."""
        with begin(self.engine, write=False) as connection:
            ids = dict(
                connection.execute(
                    sa.select(FEATURES.c.name, DERIVED.c.feature_id)
                    .join_from(DERIVED, FEATURES, DERIVED.c.feature_id == FEATURES.c.id)
                    .where(FEATURES.c.name.in_(set(names)))
                ).all()
            )
            missing = [name for name in names if name not in ids]
            if missing:
                raise NotFound("not derived features: " + ", ".join(repr(name) for name in missing))
            definitions = _definitions(connection, list(ids.values()))
        return {name: definitions[ids[name]] for name in names}

    def list(self) -> list[DerivedFeature]:
        with begin(self.engine, write=False) as connection:
            ids = connection.scalars(sa.select(DERIVED.c.feature_id)).all()
            definitions = _definitions(connection, ids)
        return sorted(definitions.values(), key=lambda item: item.feature.name)


def _definitions(connection: Connection, feature_ids: Sequence[int]) -> dict[int, DerivedFeature]:
    if not feature_ids:
        return {}
    rows = connection.execute(
        sa.select(FEATURES, DERIVED.c.expression)
        .join_from(DERIVED, FEATURES, DERIVED.c.feature_id == FEATURES.c.id)
        .where(DERIVED.c.feature_id.in_(feature_ids))
    ).all()
    input_rows = connection.execute(
        sa.select(INPUTS.c.feature_id, FEATURES)
        .join_from(INPUTS, FEATURES, INPUTS.c.input_id == FEATURES.c.id)
        .where(INPUTS.c.feature_id.in_(feature_ids))
    ).all()
    inputs: dict[int, dict[str, Feature]] = {}
    for row in input_rows:
        inputs.setdefault(row.feature_id, {})[row.name] = Feature(
            id=row.id,
            name=row.name,
            unit=row.unit,
            sampling_period=timedelta(seconds=row.sampling_period_seconds),
        )
    result = {}
    for row in rows:
        names = parse_expression(row.expression).names
        by_name = inputs.get(row.id, {})
        result[row.id] = DerivedFeature(
            feature=_feature(row),
            expression=row.expression,
            inputs=tuple(by_name[name] for name in names),
        )
    return result


def _check_no_cycle(connection: Connection, name: str, inputs: Sequence[Feature]) -> None:
    """Follows derived inputs depth first from `inputs`; reaching `name` is a cycle, named in
    the error from `name` back to itself."""
    edges: dict[int, list[int]] = {}
    for feature_id, input_id in connection.execute(
        sa.select(INPUTS.c.feature_id, INPUTS.c.input_id)
    ):
        edges.setdefault(feature_id, []).append(input_id)
    names = dict(connection.execute(sa.select(FEATURES.c.id, FEATURES.c.name)).all())
    for start in inputs:
        path = _path_to(start.id, name, edges, names, seen=set())
        if path is not None:
            chain = " -> ".join([name, *(names[feature_id] for feature_id in path)])
            raise DerivedFeatureCycle(f"cycle of derived features: {chain}")


def _path_to(
    feature_id: int,
    target: str,
    edges: Mapping[int, list[int]],
    names: Mapping[int, str],
    seen: set[int],
) -> list[int] | None:
    if names.get(feature_id) == target:
        return [feature_id]
    if feature_id in seen:
        return None
    seen.add(feature_id)
    for input_id in edges.get(feature_id, ()):
        path = _path_to(input_id, target, edges, names, seen)
        if path is not None:
            return [feature_id, *path]
    return None


def replace_values(
    connection: Connection,
    *,
    object_id: int,
    feature_id: int,
    start: datetime,
    end: datetime,
    values: pd.Series,
) -> int:
    """Replaces the stored values of (object, feature) in `[start, end)` with `values` (NaN is
    stored as no data); returns the rows written. Runs in the caller's transaction."""
    connection.execute(
        VALUES.delete().where(
            VALUES.c.object_id == object_id,
            VALUES.c.feature_id == feature_id,
            VALUES.c.timestamp >= start,
            VALUES.c.timestamp < end,
        )
    )
    if values.empty:
        return 0
    stamps = pd.DatetimeIndex(values.index).to_pydatetime()
    numbers = values.to_numpy(dtype="float64")
    rows = [
        {
            "object_id": object_id,
            "feature_id": feature_id,
            "timestamp": stamp,
            "value": None if np.isnan(number) else float(number),
        }
        for stamp, number in zip(stamps, numbers, strict=True)
    ]
    connection.execute(VALUES.insert(), rows)
    return len(rows)
