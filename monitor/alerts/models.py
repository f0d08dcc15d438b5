"""What a notification says: the kind, the waiting items, and who is on duty."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from monitor.config.alerts import AlertKind as Kind
from monitor.config.alerts import Role

__all__ = ["AlertItem", "Duty", "Kind", "Notification", "Recipient", "Role"]


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
    # Signed, expiring links (GET shows a confirmation, its button does it); None when the
    # item is no longer waiting or links are not configured.
    ack_url: str | None = None
    dismiss_url: str | None = None
    acked_by: str | None = None  # someone already acknowledged it (escalation stopped)
    # Messenger: when the conversation's 24 h reply window closes (`window` alerts say it).
    window_closes_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Recipient:
    """Whom a notification is for: a role in the duty and the person holding it."""

    role: Role
    name: str
    # How each receiver type reaches them ([roster.people]): "slack" -> member id, ...
    handles: dict[str, str] = field(default_factory=dict)


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
    # The person this is for (student for warning/breach/reminder/handover, backup or lead for
    # an escalation); None for a resolution, which goes to everyone who was told.
    addressed_to: Recipient | None = None
    # Escalation step (1 = first role in escalate_to) or reminder number; None otherwise.
    step: int | None = None
    queue_url: str | None = None  # the queue page
    # IANA zone of the people it is for (the roster's): times in its text are local.
    timezone: str = "UTC"


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def notification_to_json(n: Notification) -> dict[str, Any]:
    """A JSON-safe dict (the outbox stores notifications as JSON)."""
    return {
        "id": n.id,
        "kind": n.kind,
        "brand": n.brand,
        "source": n.source,
        "platform": n.platform,
        "created_at": n.created_at.isoformat(),
        "duty": None if n.duty is None else asdict(n.duty),
        "addressed_to": None if n.addressed_to is None else asdict(n.addressed_to),
        "step": n.step,
        "queue_url": n.queue_url,
        "timezone": n.timezone,
        "items": [
            {
                **asdict(i),
                "created_at": i.created_at.isoformat(),
                "due_at": i.due_at.isoformat(),
                "responded_at": i.responded_at.isoformat() if i.responded_at else None,
                "window_closes_at": (
                    i.window_closes_at.isoformat() if i.window_closes_at else None
                ),
            }
            for i in n.items
        ],
    }


def notification_from_json(data: dict[str, Any]) -> Notification:
    """The inverse of notification_to_json."""
    items = []
    for raw in data["items"]:
        values = dict(raw)
        values["created_at"] = datetime.fromisoformat(raw["created_at"])
        values["due_at"] = datetime.fromisoformat(raw["due_at"])
        values["responded_at"] = _time(raw.get("responded_at"))
        values["window_closes_at"] = _time(raw.get("window_closes_at"))
        items.append(AlertItem(**values))
    return Notification(
        id=data["id"],
        kind=data["kind"],
        brand=data["brand"],
        source=data["source"],
        platform=data["platform"],
        created_at=datetime.fromisoformat(data["created_at"]),
        duty=Duty(**data["duty"]) if data.get("duty") else None,
        items=tuple(items),
        addressed_to=Recipient(**data["addressed_to"]) if data.get("addressed_to") else None,
        step=data.get("step"),
        queue_url=data.get("queue_url"),
        timezone=data.get("timezone") or "UTC",  # rows from before local times: UTC
    )
