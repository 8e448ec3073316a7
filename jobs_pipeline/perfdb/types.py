"""Column types shared by the models and the bulk paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# SQLite has no timestamp type: values are stored as text in this one format, so that string
# order equals time order and the bulk import can write the same text without SQLAlchemy.
SQLITE_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def to_utc(value: datetime) -> datetime:
    """Returns an aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps: `timestamptz` on PostgreSQL, fixed-format text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(26))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {value!r}")
        value = to_utc(value)
        if dialect.name == "sqlite":
            return value.strftime(SQLITE_TIMESTAMP_FORMAT)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return datetime.strptime(value, SQLITE_TIMESTAMP_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                # Written by someone else (a frontend, `CURRENT_TIMESTAMP`): any ISO 8601 form,
                # naive meaning UTC.
                return to_utc(datetime.fromisoformat(value))
        return to_utc(value)
