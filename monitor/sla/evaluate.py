"""Pure SLA evaluation: period, deadlines, response matching and item state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from monitor.domain import Item, ItemState, Message, Period, StoredMessage
from monitor.sla.calendar import WeeklyCalendar

ReplyMatch = Literal["thread", "direct"]


def find_response(
    item: Message, thread: Sequence[StoredMessage], reply_match: ReplyMatch
) -> StoredMessage | None:
    """The first brand message after `item` in its thread (direct replies only if asked).

    Hidden or deleted brand replies still count: the consumer did get an answer.
    """
    # One pass, no list or key function: a batch looks up thousands of items' responses.
    at, seq = item.created_at, item.seq
    best: StoredMessage | None = None
    best_key: tuple[datetime, int, int] | None = None
    for stored in thread:
        m = stored.message
        # Only brand messages later in platform order (created_at, then the platform's seq).
        if not m.is_brand or m.created_at < at or (m.created_at == at and m.seq <= seq):
            continue
        if reply_match != "thread" and m.parent_id != item.platform_id:
            continue
        key = (m.created_at, m.seq, stored.id)
        if best_key is None or key < best_key:
            best, best_key = stored, key
    return best


def dismissal_reason(message: Message) -> str | None:
    """Why a message's item leaves the figures, if it does."""
    if message.deleted:
        return "deleted"
    if message.hidden:
        return "hidden"
    return None


@dataclass(frozen=True, kw_only=True)
class SlaPolicy:
    """Office calendar (period), coverage calendar (SLA clock), targets and matching rule."""

    office: WeeklyCalendar
    coverage: WeeklyCalendar
    targets: Mapping[Period, float]
    warn_at: float
    reply_match: ReplyMatch

    def period(self, message: Message) -> Period:
        """Office hours if created inside the office calendar, else after hours."""
        is_open = self.office.is_open(message.created_at)
        return Period.OFFICE_HOURS if is_open else Period.AFTER_HOURS

    def new_item(
        self,
        *,
        message_id: int,
        source: str,
        message: Message,
        brand: str,
        author_name: str | None = None,
    ) -> Item:
        """A fresh open item for a consumer message, with its deadlines."""
        return Item(**self._fresh(message_id, source, message, brand, author_name))

    def first_item(
        self,
        *,
        message_id: int,
        source: str,
        message: Message,
        brand: str,
        thread: Sequence[StoredMessage],
        author_name: str | None = None,
    ) -> Item:
        """evaluate(new_item(...), message, thread), building one Item instead of two (a batch
        creates thousands; the copy in answer cost as much as the rest of the evaluation)."""
        fields = self._fresh(message_id, source, message, brand, author_name)
        reason = dismissal_reason(message)
        if reason is not None:
            fields.update(state=ItemState.DISMISSED, dismissed_reason=reason, author_name=None)
        else:
            response = find_response(message, thread, self.reply_match)
            if response is not None:
                fields.update(
                    self._answered(message.created_at, fields["target_seconds"], response)
                )
        return Item(**fields)

    def _fresh(
        self, message_id: int, source: str, message: Message, brand: str, author_name: str | None
    ) -> dict[str, Any]:
        created = message.created_at
        period = self.period(message)
        target = self.targets[period]
        return {
            "message_id": message_id,
            "source": source,
            "brand": brand,
            "thread_id": message.thread_id,
            "created_at": created,
            "period": period,
            "weekend": self.office.is_weekend(created),
            "holiday": self.office.holiday_name(created),
            "state": ItemState.OPEN,
            "target_seconds": target,
            "warning_at": self.coverage.add_covered(created, target * self.warn_at),
            "due_at": self.coverage.add_covered(created, target),
            "author_name": author_name,
        }

    def answer(self, item: Item, response: StoredMessage) -> Item:
        """The item with its response recorded; in time iff SLA time ≤ target (inclusive)."""
        return replace(item, **self._answered(item.created_at, item.target_seconds, response))

    def _answered(
        self, created: datetime, target_seconds: float, response: StoredMessage
    ) -> dict[str, Any]:
        responded = response.message.created_at
        sla_seconds = self.coverage.covered_seconds(created, responded)
        in_time = sla_seconds <= target_seconds
        return {
            "state": ItemState.ANSWERED_IN_TIME if in_time else ItemState.ANSWERED_LATE,
            "dismissed_reason": None,
            "response_message_id": response.id,
            "responder": response.message.author_name,
            "responded_at": responded,
            "response_seconds": (responded - created).total_seconds(),
            "response_sla_seconds": sla_seconds,
            "author_name": None,  # the queue page needs the name only while the item waits
        }

    def evaluate(self, item: Item, message: Message, thread: Sequence[StoredMessage]) -> Item:
        """The item's state given its thread (or the thread's brand messages, all that answer)."""
        if item.state is ItemState.DISMISSED and item.dismissed_reason not in ("hidden", "deleted"):
            # Dismissed by a moderator (no reply needed, spam): that decision stands, through
            # later polls, hiding and un-hiding, and late replies alike.
            return item
        reason = dismissal_reason(message)
        if reason is not None:
            if item.state is ItemState.DISMISSED and item.dismissed_reason == reason:
                return item
            return replace(
                item, state=ItemState.DISMISSED, dismissed_reason=reason, author_name=None
            )
        if item.state is ItemState.DISMISSED:
            # Un-hidden: back with its original clock; the scheduler re-judges its deadlines.
            item = replace(item, state=ItemState.OPEN, dismissed_reason=None)
        if not item.state.is_unanswered:
            return item
        response = find_response(message, thread, self.reply_match)
        return self.answer(item, response) if response is not None else item

    def rederive(self, item: Item, message: Message, thread: Sequence[StoredMessage]) -> Item:
        """Recompute period, deadlines and outcome from the raw messages (after a config change)."""
        fresh = self.new_item(
            message_id=item.message_id,
            source=item.source,
            message=message,
            brand=item.brand,
            author_name=item.author_name,
        )
        if item.state is ItemState.DISMISSED and item.dismissed_reason not in ("hidden", "deleted"):
            return replace(fresh, state=ItemState.DISMISSED, dismissed_reason=item.dismissed_reason)
        evaluated = self.evaluate(fresh, message, thread)
        if evaluated.state.is_unanswered and item.state.is_unanswered:
            # Warning/breach are events that happened; the scheduler re-judges from here.
            return replace(evaluated, state=item.state)
        return evaluated
