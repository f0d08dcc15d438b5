"""Response matching and item state transitions (pure code)."""

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.domain import Item, ItemState, Message, Period, StoredMessage
from monitor.sla.calendar import ALWAYS, WeeklyCalendar, parse_hours
from monitor.sla.evaluate import SlaPolicy, find_response

T0 = datetime(2026, 11, 16, 20, 0, tzinfo=UTC)
OFFICE = WeeklyCalendar(
    name="office",
    timezone=ZoneInfo("Europe/Amsterdam"),
    intervals=tuple(parse_hours("mon-fri 09:00-17:00")),
)
TARGETS = {Period.OFFICE_HOURS: 3600.0, Period.AFTER_HOURS: 1800.0}


def msg(
    pid: str,
    minutes: float,
    *,
    brand: bool = False,
    parent: str | None = "post",
    seq: int = 0,
    **kw: object,
) -> StoredMessage:
    return StoredMessage(
        id=int(pid.strip("abcdefghijklmnopqrstuvwxyz_") or 0),
        source="s",
        detected_at=T0,
        message=Message(
            platform_id=pid,
            thread_id="post",
            parent_id=parent,
            author_id="page" if brand else "u1",
            author_name="Page" if brand else "Ann",
            text="x",
            created_at=T0 + timedelta(minutes=minutes),
            seq=seq,
            is_brand=brand,
            **kw,  # type: ignore[arg-type]
        ),
    )


POLICY = SlaPolicy(
    office=OFFICE, coverage=ALWAYS, targets=TARGETS, warn_at=0.75, reply_match="thread"
)


def item_for(stored: StoredMessage) -> Item:
    return POLICY.new_item(
        message_id=stored.id, source=stored.source, message=stored.message, brand="b"
    )


def evaluate(item: Item, message: Message, thread: list[StoredMessage], _mode: str) -> Item:
    return POLICY.evaluate(item, message, thread)


def test_thread_mode_takes_first_later_brand_message() -> None:
    c1, c2 = msg("c1", 0, seq=1), msg("c2", 5, seq=2)
    reply = msg("r3", 20, brand=True, parent="c2", seq=3)
    later = msg("r4", 30, brand=True, seq=4)
    thread = [c1, c2, reply, later]
    # One brand message answers both earlier open items.
    assert find_response(c1.message, thread, "thread") is reply
    assert find_response(c2.message, thread, "thread") is reply


def test_direct_mode_needs_a_reply_to_the_item() -> None:
    c1, c2 = msg("c1", 0, seq=1), msg("c2", 5, seq=2)
    reply_to_c2 = msg("r3", 20, brand=True, parent="c2", seq=3)
    thread = [c1, c2, reply_to_c2]
    assert find_response(c1.message, thread, "direct") is None
    assert find_response(c2.message, thread, "direct") is reply_to_c2


def test_same_second_uses_platform_order() -> None:
    before = msg("r1", 0, brand=True, seq=1)
    item = msg("c2", 0, seq=2)
    after = msg("r3", 0, brand=True, seq=3)
    assert find_response(item.message, [before, item, after], "thread") is after
    assert find_response(item.message, [before, item], "thread") is None


def test_answered_in_time_is_inclusive_and_late_beyond() -> None:
    item_msg = msg("c1", 0, seq=1)
    item = item_for(item_msg)  # after hours: 1800 s
    assert item.period is Period.AFTER_HOURS
    on_time = evaluate(
        item, item_msg.message, [item_msg, msg("r2", 30, brand=True, seq=2)], "thread"
    )
    assert on_time.state is ItemState.ANSWERED_IN_TIME
    assert on_time.response_seconds == 1800.0
    late = evaluate(
        item, item_msg.message, [item_msg, msg("r2", 30.02, brand=True, seq=2)], "thread"
    )
    assert late.state is ItemState.ANSWERED_LATE
    assert late.responder == "Page"


def test_hidden_item_is_dismissed_and_unhiding_reopens_with_original_clock() -> None:
    item_msg = msg("c1", 0, seq=1)
    item = item_for(item_msg)
    hidden = replace(item_msg.message, hidden=True)
    dismissed = evaluate(item, hidden, [item_msg], "thread")
    assert (dismissed.state, dismissed.dismissed_reason) == (ItemState.DISMISSED, "hidden")
    reply = msg("r2", 90, brand=True, seq=2)
    reopened = evaluate(dismissed, item_msg.message, [item_msg, reply], "thread")
    assert reopened.state is ItemState.ANSWERED_LATE
    assert reopened.response_seconds == 90 * 60
    assert reopened.due_at == item.due_at


def test_hidden_brand_reply_still_counts() -> None:
    item_msg = msg("c1", 0, seq=1)
    reply = msg("r2", 10, brand=True, seq=2, hidden=True, deleted=True)
    answered = evaluate(item_for(item_msg), item_msg.message, [item_msg, reply], "thread")
    assert answered.state is ItemState.ANSWERED_IN_TIME


def test_first_item_equals_evaluating_a_new_item() -> None:
    """first_item (one Item built) gives what evaluate(new_item(...)) gives, over random threads:
    both matching rules and calendars, hidden and deleted items, late and early replies."""
    rng = random.Random(7)
    policies = [
        SlaPolicy(office=OFFICE, coverage=coverage, targets=TARGETS, warn_at=0.5, reply_match=m)
        for coverage in (ALWAYS, OFFICE)
        for m in ("thread", "direct")
    ]
    checked = answered = 0
    for n in range(400):
        thread = [
            msg(
                f"m{k}",
                rng.randrange(-3000, 3000),
                brand=rng.random() < 0.4,
                parent=rng.choice(("post", "m0", "m1", "m2")),
                seq=rng.randrange(3),
                hidden=rng.random() < 0.1,
                deleted=rng.random() < 0.1,
            )
            for k in range(rng.randrange(1, 8))
        ]
        replies = [s for s in thread if s.message.is_brand]
        for stored in thread:
            if stored.message.is_brand:
                continue
            policy = policies[n % len(policies)]
            common: dict[str, Any] = {
                "message_id": stored.id,
                "source": "s",
                "message": stored.message,
                "brand": "b",
                "author_name": rng.choice((None, "Ann")),
            }
            slow = policy.evaluate(policy.new_item(**common), stored.message, replies)
            assert policy.first_item(**common, thread=replies) == slow
            checked += 1
            answered += slow.response_message_id is not None
    assert checked > 500 and 100 < answered < checked


def test_find_response_equals_the_first_of_the_later_brand_messages() -> None:
    """The one-pass find_response picks what filtering and min() picked (its former code), on
    unsorted random threads with equal instants and sequences, in both matching rules."""

    def reference(item: Message, thread: list[StoredMessage], rule: str) -> StoredMessage | None:
        candidates = [
            s
            for s in thread
            if s.message.is_brand
            and (s.message.created_at, s.message.seq) > (item.created_at, item.seq)
            and (rule == "thread" or s.message.parent_id == item.platform_id)
        ]
        key = lambda s: (s.message.created_at, s.message.seq, s.id)  # noqa: E731
        return min(candidates, key=key) if candidates else None

    rng = random.Random(11)
    found = 0
    for _ in range(2000):
        thread = [
            msg(
                f"m{k}",
                rng.randrange(4),
                brand=rng.random() < 0.5,
                parent=rng.choice(("post", "m0", "m1")),
                seq=rng.randrange(3),
            )
            for k in range(rng.randrange(1, 9))
        ]
        item = rng.choice(thread).message
        for rule in ("thread", "direct"):
            expected = reference(item, thread, rule)
            assert find_response(item, thread, rule) is expected
            found += expected is not None
    assert 500 < found < 3500
