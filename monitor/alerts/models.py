"""What a notification says: the kind, the waiting items, and who is on duty."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Kind = Literal["warning", "breach", "resolved"]


@dataclass(frozen=True, kw_only=True)
class Duty:
    """Who is on duty at an instant: the student, their backup and the lead."""

    student: str
    backup: str | None = None
    lead: str | None = None


@dataclass(frozen=True, kw_only=True)
class AlertItem:
    """One consumer item in a notification."""

    item_id: int
    permalink: str | None
    author: str | None
    excerpt: str  # the first ~200 characters of what the consumer wrote
    created_at: datetime
    due_at: datetime
    period: str
    state: str  # open | warning | breached | answered_in_time | answered_late | dismissed
    responder: str | None = None
    responded_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Notification:
    """A message for the on-duty student about one source; items that came due together."""

    id: str  # stable: the same event always yields the same id (idempotent delivery)
    kind: Kind
    brand: str
    source: str
    platform: str
    created_at: datetime  # when the event happened (the warning or due instant)
    items: tuple[AlertItem, ...]
    duty: Duty | None  # None: a roster gap, nobody is on duty
