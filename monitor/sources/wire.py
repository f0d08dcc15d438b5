"""Reading the loose JSON every platform sends: times, ints and lists that may be anything."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeGuard


def parse_time(value: object, *, naive_is_utc: bool = False) -> datetime | None:
    """An ISO 8601 time as aware UTC; None if unreadable, or naive unless `naive_is_utc`."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        if not naive_is_utc:
            return None  # RFC 3339 requires an offset; guessing one would shift the SLA clock
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer (a bool is not one, though Python says so)."""
    return isinstance(value, int) and not isinstance(value, bool)


def as_int(value: Any) -> int | None:
    """An integer, or a string of digits, as an int; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def as_list(value: Any) -> list[Any]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []
