"""Escalation and reminders after a breach: a pure plan of when each next step is due.

A breach tells the on-duty student. Without an ack, reply or dismissal, the first role of
`escalate_to` (the backup) is told `escalate_after` later, the next role (the lead) another
`escalate_after` later; the student is reminded every `remind_every` until the item is
answered, acknowledged or dismissed. Step k of the escalation is due at
`breached_at + k × escalate_after`, reminder n at `breached_at + n × remind_every`.

The instants come from the breach instant (the item's due time), never from when a step
happened to be processed, so a restart or a slow round does not shift later steps. The next
instant is persisted with the row (`alert_followups.next_at`) and the AlertService's loop
sleeps until the earliest one: the same pattern as the outbox's `next_attempt_at`. After a
long outage every missed escalation step still fires once (the lead must hear of it), but
missed reminders collapse into one (the latest), so nobody gets a burst of identical ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from monitor.config.alerts import AlertsConfig

StepKind = Literal["escalation", "reminder"]


@dataclass(frozen=True, kw_only=True)
class FollowUp:
    """The escalation/reminder progress of one item (a row of alert_followups)."""

    item_id: int
    source: str
    breached_at: datetime | None  # None: acknowledged before it breached
    escalations_sent: int = 0
    reminders_sent: int = 0
    next_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def active(self) -> bool:
        """Still escalating or reminding."""
        return self.stopped_at is None and self.breached_at is not None


@dataclass(frozen=True, kw_only=True, order=True)
class Step:
    """One escalation step or reminder that is due."""

    at: datetime
    kind: StepKind
    number: int  # escalation step (1-based) or reminder number


@dataclass(frozen=True, kw_only=True)
class FollowUpPolicy:
    """When escalation steps and reminders are due (pure: `now` is a parameter)."""

    escalate_after: float
    escalate_to: tuple[str, ...]
    remind_every: float | None

    @classmethod
    def from_config(cls, config: AlertsConfig) -> FollowUpPolicy:
        """The policy as configured in [alerts]."""
        return cls(
            escalate_after=config.escalate_after,
            escalate_to=tuple(config.escalate_to),
            remind_every=config.remind_every,
        )

    def escalation_at(self, breached_at: datetime, step: int) -> datetime:
        """When escalation step `step` (1-based) is due."""
        return breached_at + timedelta(seconds=step * self.escalate_after)

    def reminder_at(self, breached_at: datetime, number: int) -> datetime:
        """When reminder `number` (1-based) is due."""
        assert self.remind_every is not None
        return breached_at + timedelta(seconds=number * self.remind_every)

    def next_at(self, f: FollowUp) -> datetime | None:
        """The instant of the next step, or None when nothing more will be sent."""
        if not f.active:
            return None
        assert f.breached_at is not None
        candidates = []
        if f.escalations_sent < len(self.escalate_to):
            candidates.append(self.escalation_at(f.breached_at, f.escalations_sent + 1))
        if self.remind_every is not None:
            candidates.append(self.reminder_at(f.breached_at, f.reminders_sent + 1))
        return min(candidates) if candidates else None

    def due(self, f: FollowUp, now: datetime) -> list[Step]:
        """The steps due at `now`, in order: every missed escalation, one (the latest) reminder."""
        if not f.active:
            return []
        assert f.breached_at is not None
        steps = [
            Step(at=self.escalation_at(f.breached_at, k), kind="escalation", number=k)
            for k in range(f.escalations_sent + 1, len(self.escalate_to) + 1)
            if self.escalation_at(f.breached_at, k) <= now
        ]
        if self.remind_every is not None:
            elapsed = (now - f.breached_at).total_seconds()
            latest = int(elapsed // self.remind_every)
            # Float division can land a hair below an exact multiple: check the next one.
            if self.reminder_at(f.breached_at, latest + 1) <= now:
                latest += 1
            if latest > f.reminders_sent:
                steps.append(
                    Step(at=self.reminder_at(f.breached_at, latest), kind="reminder", number=latest)
                )
        return sorted(steps)

    def after(self, f: FollowUp, step: Step) -> FollowUp:
        """The progress once `step` was sent (next_at recomputed)."""
        from dataclasses import replace

        if step.kind == "escalation":
            done = replace(f, escalations_sent=max(f.escalations_sent, step.number))
        else:
            done = replace(f, reminders_sent=max(f.reminders_sent, step.number))
        return replace(done, next_at=self.next_at(done))
