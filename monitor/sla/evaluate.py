"""Pure SLA evaluation: period, deadlines, response matching and item state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from monitor.domain import Item, ItemState, Message, Period, StoredMessage
from monitor.sla.calendar import WeeklyCalendar

ReplyMatch = Literal["thread", "direct"]


def classify(created_at: datetime, calendar: WeeklyCalendar) -> Period:
    """Office hours if the instant lies inside the office calendar, else after hours."""
    return Period.OFFICE_HOURS if calendar.is_open(created_at) else Period.AFTER_HOURS


def _after(candidate: Message, item: Message) -> bool:
    """Later in platform order: created_at first, then the platform's sequence."""
    if candidate.created_at < item.created_at:
        return False
    return (candidate.created_at, candidate.seq) > (item.created_at, item.seq)


def find_response(
    item: Message, thread: Sequence[StoredMessage], reply_match: ReplyMatch
) -> StoredMessage | None:
    """The first brand message after `item` in its thread (direct replies only if asked).

    Hidden or deleted brand replies still count: the consumer did get an answer.
    """
    candidates = [
        s
        for s in thread
        if s.message.is_brand
        and _after(s.message, item)
        and (reply_match == "thread" or s.message.parent_id == item.platform_id)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (s.message.created_at, s.message.seq, s.id))


def answer(item: Item, response: StoredMessage) -> Item:
    """The item with its response recorded and its outcome decided (≤ target is in time)."""
    seconds = (response.message.created_at - item.created_at).total_seconds()
    # The SLA clock runs `always` until coverage calendars arrive: SLA time = wall-clock.
    sla_seconds = seconds
    in_time = sla_seconds <= item.target_seconds
    return replace(
        item,
        state=ItemState.ANSWERED_IN_TIME if in_time else ItemState.ANSWERED_LATE,
        dismissed_reason=None,
        response_message_id=response.id,
        responder=response.message.author_name,
        responded_at=response.message.created_at,
        response_seconds=seconds,
        response_sla_seconds=sla_seconds,
    )


def new_item(
    stored: StoredMessage,
    *,
    brand: str,
    calendar: WeeklyCalendar,
    targets: dict[Period, float],
    warn_at: float,
) -> Item:
    """A fresh open item for a consumer message."""
    created = stored.message.created_at
    period = classify(created, calendar)
    target = targets[period]
    return Item(
        message_id=stored.id,
        source=stored.source,
        brand=brand,
        thread_id=stored.message.thread_id,
        created_at=created,
        period=period,
        weekend=calendar.is_weekend(created),
        state=ItemState.OPEN,
        target_seconds=target,
        warning_at=created + timedelta(seconds=target * warn_at),
        due_at=created + timedelta(seconds=target),
    )


def dismissal_reason(message: Message) -> str | None:
    """Why a message's item leaves the figures, if it does."""
    if message.deleted:
        return "deleted"
    if message.hidden:
        return "hidden"
    return None


def evaluate(
    item: Item, message: Message, thread: Sequence[StoredMessage], reply_match: ReplyMatch
) -> Item:
    """The item's state given the current thread: dismissed, reopened, answered or unchanged."""
    reason = dismissal_reason(message)
    if reason is not None:
        if item.state is ItemState.DISMISSED and item.dismissed_reason == reason:
            return item
        return replace(item, state=ItemState.DISMISSED, dismissed_reason=reason)
    if item.state is ItemState.DISMISSED:
        if item.dismissed_reason not in ("hidden", "deleted"):
            return item  # dismissed by a moderator: stays dismissed
        # Un-hidden: back with its original clock and whatever response it already has.
        item = replace(item, state=ItemState.OPEN, dismissed_reason=None)
        if item.response_message_id is not None:
            return replace(
                item,
                state=ItemState.ANSWERED_IN_TIME
                if (item.response_sla_seconds or 0) <= item.target_seconds
                else ItemState.ANSWERED_LATE,
            )
    if not item.state.is_unanswered:
        return item
    response = find_response(message, thread, reply_match)
    return answer(item, response) if response is not None else item
