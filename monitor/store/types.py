"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Text, type_coerce
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores instants in UTC and always returns timezone-aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Normalise to UTC; SQLite has no time zone support, so store naive UTC there."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to naive values read back from SQLite."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TagList(TypeDecorator[tuple[str, ...]]):
    """Hashtags as " tag1 tag2 " (NULL when none), so one tag is `LIKE '% tag %'` anywhere."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: tuple[str, ...] | None, dialect: Dialect) -> Any:
        """Space-separated between spaces; NULL for no tags."""
        return f" {' '.join(value)} " if value else None

    def process_result_value(self, value: str | None, dialect: Dialect) -> tuple[str, ...]:
        """The tuple back, in the order stored."""
        return tuple(value.split()) if value else ()


def has_tag(column: Any, tag: str) -> Any:
    """SQL: the TagList column holds `tag` (lower case, without '#')."""
    # Compared as text: bound against the column itself, the pattern would go through
    # TagList.process_bind_param, which takes a tuple of tags, not a string.
    # '_' is common in hashtags and a LIKE wildcard: escaped, job_market does not match jobxmarket.
    escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return type_coerce(column, Text).like(f"% {escaped} %", escape="\\")
