"""Fake phpBB board + the real service + a scrape: hand-computed numbers, faults, 304s."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.simulator.phpbb import (
    CutFeed,
    Delay,
    Disconnect,
    FakePhpbbBoard,
    Fault,
    HtmlPage,
    HttpStatus,
    MalformedXml,
    TruncatedBody,
    rate_limited,
)
from monitor.sources.base import RateLimited
from monitor.web.keys import COORDINATOR, METRICS, SCHEDULER, STORE
from tests.e2e.conftest import settle

FORUM = 2
MOD = "Acme_Support"
SOURCE = "acme-board"
ACME = {"brand": "acme", "source": SOURCE}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
async def board() -> AsyncIterator[FakePhpbbBoard]:
    fake = FakePhpbbBoard(utc_offset=timedelta(hours=1))  # Amsterdam in November
    fake.add_forum(FORUM, "Support")
    await fake.start()
    yield fake
    await fake.stop()


def write_config(path: Path, board: FakePhpbbBoard, *, reply_match: str = "thread") -> Path:
    """Amsterdam office calendar mon-fri 09:00-17:00, targets 60m office / 30m after hours."""
    path.write_text(
        f"""
database_url = "sqlite+aiosqlite:///{path.parent}/e2e.db"
[http]
port = 0
[calendars.office]
timezone = "Europe/Amsterdam"
hours = ["mon-fri 09:00-17:00"]
[policies.default]
office_hours = "60m"
after_hours = "30m"
reply_match = "{reply_match}"
[[sources]]
type = "phpbb_atom"
name = "{SOURCE}"
brand = "acme"
base_url = "{board.base_url}"
moderators = ["acme_support", "group:staff"]
forums = [{FORUM}]
poll_interval = "60s"
request_timeout = "1s"
""",
        encoding="utf-8",
    )
    return path


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape keyed by (name, labels)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape[(name, frozenset(labels.items()))]


async def test_scripted_conversation_gives_hand_computed_numbers(
    board: FakePhpbbBoard, tmp_path: Path, aiohttp_client: Any
) -> None:
    # Monday 16 Nov, 11:00 local (office): Ann opens a topic; a post waits in the moderation
    # queue (phpBB's "not for consumers" post: guests never see it); the moderator answers
    # the topic itself after 25 min (a direct reply: its parent is the first post). Ann edits
    # her question after the first poll.
    t1, p1 = board.add_topic(
        forum_id=FORUM,
        title="Where is my order?",
        author="Ann",
        created_at=utc(2026, 11, 16, 10, 0),
        text="Ordered a coat last week.",
    )
    board.add_post(
        topic_id=t1,
        author="Dan",
        created_at=utc(2026, 11, 16, 10, 5),
        text="cheap watches",
        approved=False,
    )
    board.add_post(topic_id=t1, author=MOD, created_at=utc(2026, 11, 16, 10, 25), text="Today!")

    config = load_config(write_config(tmp_path / "c.toml", board))
    clock = FakeClock(utc(2026, 11, 16, 10, 45))
    app = create_app(config, clock=clock, start_polling=False)
    client = await aiohttp_client(app)
    coordinator, scheduler, store = app[COORDINATOR], app[SCHEDULER], app[STORE]
    await coordinator.poll_once(SOURCE)
    board.edit(p1, "Ordered a coat last week, order #123.", edited_at=utc(2026, 11, 16, 10, 50))

    # 20:00 local (after hours): Bob asks in the same topic, Eve spams.
    bob = board.add_post(
        topic_id=t1, author="Bob", created_at=utc(2026, 11, 16, 19, 0), text="Mine neither?"
    )
    eve = board.add_post(
        topic_id=t1, author="Eve", created_at=utc(2026, 11, 16, 19, 22), text="Buy followers"
    )
    await clock.advance((utc(2026, 11, 16, 19, 23) - clock.now()).total_seconds())
    await coordinator.poll_once(SOURCE)
    await settle(lambda: scheduler.fired == 1, "Bob's warning (22.5 min, already past)")
    board.soft_delete(eve)  # a moderator removes the spam
    # Bob's item is due at 19:30: the pre-breach re-read sees no answer (and Eve's post gone).
    await clock.advance(8 * 60)
    await settle(lambda: scheduler.fired == 2, "Bob's breach")
    # A thread-level answer after the breach: Bob's item is answered late.
    board.add_post(
        topic_id=t1, author=MOD, created_at=utc(2026, 11, 16, 19, 45), text="Both ship tomorrow"
    )
    await clock.advance(15 * 60)
    await coordinator.poll_once(SOURCE)

    # Friday 16:00 local (office): Cat opens a topic nobody answers.
    t2, _ = board.add_topic(
        forum_id=FORUM,
        title="Refund?",
        author="Cat",
        created_at=utc(2026, 11, 20, 15, 0),
        text="The coat arrived damaged.",
    )
    await clock.advance((utc(2026, 11, 20, 15, 1) - clock.now()).total_seconds())
    await coordinator.poll_once(SOURCE)
    # Saturday morning: Cat's item passed its warning and its due time (the breach wins).
    await clock.advance((utc(2026, 11, 21, 9, 59) - clock.now()).total_seconds())
    await settle(lambda: scheduler.fired == 3, "Cat's breach")

    # Saturday (after hours): a topic longer than the feed window (15 posts). Frank asks, nine
    # fans ask, the moderator answers each after 5 minutes; polled halfway and at the end.
    t3, p3 = board.add_topic(
        forum_id=FORUM,
        title="Giveaway rules?",
        author="Frank",
        created_at=utc(2026, 11, 21, 10, 0),
        text="How do I join?",
    )
    board.add_post(topic_id=t3, author=MOD, created_at=utc(2026, 11, 21, 10, 5), text="Like it")
    for fan in range(1, 10):
        asked = utc(2026, 11, 21, 10, 0) + timedelta(minutes=10 * fan)
        board.add_post(topic_id=t3, author=f"Fan{fan}", created_at=asked, text=f"And me #{fan}?")
        board.add_post(
            topic_id=t3, author=MOD, created_at=asked + timedelta(minutes=5), text="Yes!"
        )
        if fan == 4:
            await clock.advance((utc(2026, 11, 21, 10, 46) - clock.now()).total_seconds())
            await coordinator.poll_once(SOURCE)
    await clock.advance((utc(2026, 11, 21, 11, 36) - clock.now()).total_seconds())
    await coordinator.poll_once(SOURCE)

    # Sunday: Bob again in the Monday topic (only an active-thread re-read can see it).
    board.add_post(
        topic_id=t1, author="Bob", created_at=utc(2026, 11, 22, 12, 0), text="Still nothing"
    )
    board.add_post(
        topic_id=t1, author=MOD, created_at=utc(2026, 11, 22, 12, 10), text="Tracking: NL123"
    )
    await clock.advance((utc(2026, 11, 22, 12, 11) - clock.now()).total_seconds())
    await coordinator.poll_once(SOURCE)
    assert coordinator.sources[SOURCE].failures == 0

    items = await store.items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    table = sorted(
        (i.created_at.strftime("%a %H:%M"), i.period.value, i.state.value, i.response_seconds)
        for i in items
    )
    fans = [
        (f"Sat {10 + (10 * f) // 60}:{(10 * f) % 60:02d}", "after_hours", "answered_in_time", 300.0)
        for f in range(1, 10)
    ]
    assert table == sorted(
        [
            ("Mon 10:00", "office_hours", "answered_in_time", 1500.0),
            ("Mon 19:00", "after_hours", "answered_late", 2700.0),
            ("Mon 19:22", "after_hours", "dismissed", None),
            ("Fri 15:00", "office_hours", "breached", None),
            ("Sat 10:00", "after_hours", "answered_in_time", 300.0),
            *fans,
            ("Sun 12:00", "after_hours", "answered_in_time", 600.0),
        ]
    )
    assert {i.dismissed_reason for i in items if i.state.value == "dismissed"} == {"deleted"}
    assert {i.responder for i in items if i.responder} == {MOD}

    messages = {m.message.platform_id: m for m in await store.all_messages(SOURCE)}
    first = messages[str(p1)]
    # The edit changed the text, never created_at; the queued post was never seen.
    assert first.edited and first.message.text == "Ordered a coat last week, order #123."
    assert first.message.created_at == utc(2026, 11, 16, 10, 0)
    assert "Dan" not in {m.message.author_name for m in messages.values()}
    assert messages[str(eve)].message.deleted and not messages[str(bob)].message.deleted
    # The long topic: 20 posts stored, none taken for deleted though the feed shows 15.
    long_topic = [m for m in messages.values() if m.message.thread_id == str(t3)]
    assert len(long_topic) == 20 and not any(m.message.deleted for m in long_topic)
    # phpBB has no reply-to: every reply's parent is the first post (from the new-topics feed).
    assert {m.message.parent_id for m in long_topic} == {None, str(p3)}

    scrape = samples(await (await client.get("/metrics")).text())
    office, after = {**ACME, "period": "office_hours"}, {**ACME, "period": "after_hours"}
    assert value(scrape, "webcare_items_total", **office) == 2
    assert value(scrape, "webcare_items_total", **after) == 13
    assert value(scrape, "webcare_responses_total", **office, outcome="in_time") == 1
    assert value(scrape, "webcare_responses_total", **after, outcome="in_time") == 11
    assert value(scrape, "webcare_responses_total", **after, outcome="late") == 1
    assert value(scrape, "webcare_first_response_seconds_sum", **office) == 1500
    assert value(scrape, "webcare_first_response_seconds_sum", **after) == 2700 + 10 * 300 + 600
    assert (
        value(
            scrape,
            "webcare_first_response_sla_seconds_bucket",
            brand="acme",
            period="after_hours",
            le="1800.0",
        )
        == 11
    )
    assert value(scrape, "webcare_sla_breaches_total", **office) == 1
    assert value(scrape, "webcare_sla_breaches_total", **after) == 1
    assert value(scrape, "webcare_open_items", **office, state="breached") == 1
    assert value(scrape, "webcare_items_dismissed_total", **ACME, reason="deleted") == 1
    assert value(scrape, "webcare_moderator_responses_total", **ACME, moderator="other") == 13
    assert value(scrape, "webcare_source_up", **ACME, platform="phpbb_atom") == 1

    # Nothing changed since: a poll costs one 304 per feed and nothing else.
    seen = len(board.requests)
    await clock.advance(60)
    await coordinator.poll_once(SOURCE)
    unchanged = board.requests[seen:]
    assert [(r.path.rsplit("/app.php/feed", 1)[1], r.status) for r in unchanged] == [
        (f"/forum/{FORUM}", 304),
        *[(f"/topic/{t}", 304) for t in sorted({t1, t2, t3})],
        ("/topics", 304),
    ]
    assert all(r.if_none_match for r in unchanged)


async def test_direct_reply_mode_on_phpbb(
    board: FakePhpbbBoard, tmp_path: Path, aiohttp_client: Any
) -> None:
    t1, _ = board.add_topic(
        forum_id=FORUM,
        title="Where is my order?",
        author="Ann",
        created_at=utc(2026, 11, 16, 10, 0),
        text="Ordered a coat last week.",
    )
    board.add_post(topic_id=t1, author=MOD, created_at=utc(2026, 11, 16, 10, 25), text="Today!")
    board.add_post(topic_id=t1, author="Bob", created_at=utc(2026, 11, 16, 19, 0), text="Me?")
    board.add_post(topic_id=t1, author=MOD, created_at=utc(2026, 11, 16, 19, 45), text="Both!")
    config = load_config(write_config(tmp_path / "c.toml", board, reply_match="direct"))
    app = create_app(config, clock=FakeClock(utc(2026, 11, 16, 19, 50)), start_polling=False)
    await aiohttp_client(app)
    await app[COORDINATOR].poll_once(SOURCE)
    await settle(lambda: app[SCHEDULER].fired == 1, "Bob's breach")
    items = await app[STORE].items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    # phpBB has no reply-to: every reply answers the topic (its first post), never Bob.
    assert {i.created_at.strftime("%H:%M"): i.response_seconds for i in items} == {
        "10:00": 1500.0,
        "19:00": None,
    }


FAULTS: list[tuple[Fault, str]] = [
    (HttpStatus(status=500), "transient"),
    (HttpStatus(status=502), "transient"),
    (Delay(seconds=3), "transient"),  # longer than request_timeout = 1s
    (MalformedXml(), "transient"),
    (TruncatedBody(), "transient"),
    (CutFeed(), "transient"),
    (HtmlPage(), "transient"),
    (Disconnect(), "transient"),
    (rate_limited(429, "120"), "rate_limited"),
    (rate_limited(503, "120"), "rate_limited"),
    (HttpStatus(status=403, body="<h1>You have been banned</h1>"), "auth"),
    (HttpStatus(status=401), "auth"),
]


async def test_every_fault_marks_the_source_down_once_and_nothing_is_lost(
    board: FakePhpbbBoard, tmp_path: Path, aiohttp_client: Any
) -> None:
    logs = io.StringIO()
    configure_logging(level="debug", fmt="json", stream=logs)
    now = utc(2026, 11, 20, 20, 0)
    t1, _ = board.add_topic(
        forum_id=FORUM, title="Hi", author="Ann", created_at=now - timedelta(hours=1), text="?"
    )
    board.add_post(topic_id=t1, author=MOD, created_at=now - timedelta(minutes=50), text="!")
    config = load_config(write_config(tmp_path / "c.toml", board))
    clock = FakeClock(now)
    app = create_app(config, clock=clock, start_polling=False)
    await aiohttp_client(app)
    coordinator, metrics = app[COORDINATOR], app[METRICS]
    up = metrics.source_up.labels("acme", SOURCE, "phpbb_atom")
    await coordinator.poll_once(SOURCE)
    assert up._value.get() == 1

    for number, (fault, reason) in enumerate(FAULTS):
        # Traffic keeps arriving during the outage; it must be there after recovery.
        board.add_post(topic_id=t1, author="Bob", created_at=clock.now(), text=f"#{number}")
        board.inject(fault, times=None)  # broken for the whole poll
        errors_before = metrics.poll_errors.labels("acme", SOURCE, reason)._value.get()
        delay = await coordinator.poll_once(SOURCE)
        assert up._value.get() == 0, fault
        assert (
            metrics.poll_errors.labels("acme", SOURCE, reason)._value.get() == errors_before + 1
        ), fault
        if reason == "rate_limited":
            assert delay >= 120  # the proxy's Retry-After beats our backoff curve
        board.clear_faults()
        await clock.advance(121)  # past any Retry-After before the next fault
    # A topic opened during the outage is found through the forum feed after recovery.
    fresh, _ = board.add_topic(
        forum_id=FORUM, title="New", author="Cat", created_at=clock.now(), text="Hello?"
    )

    await coordinator.poll_once(SOURCE)
    assert up._value.get() == 1
    items = await app[STORE].items_between(now - timedelta(days=1), now + timedelta(days=1))
    assert len(items) == 1 + len(FAULTS) + 1
    assert str(fresh) in {i.thread_id for i in items}

    events = [orjson.loads(line)["event"] for line in logs.getvalue().splitlines()]
    assert events.count("source down") == 1
    assert events.count("source recovered") == 1


async def test_a_throttled_board_gets_one_request_until_retry_after_has_passed(
    board: FakePhpbbBoard, tmp_path: Path, aiohttp_client: Any
) -> None:
    now = utc(2026, 11, 20, 20, 0)
    t1, _ = board.add_topic(forum_id=FORUM, title="Hi", author="Ann", created_at=now, text="?")
    config = load_config(write_config(tmp_path / "c.toml", board))
    clock = FakeClock(now + timedelta(minutes=1))
    app = create_app(config, clock=clock, start_polling=False)
    await aiohttp_client(app)
    coordinator = app[COORDINATOR]
    board.inject(rate_limited(429, "600"), times=None)
    assert await coordinator.poll_once(SOURCE) >= 600
    # Impatient callers (a restart of the loop, a pre-breach re-read) send nothing meanwhile.
    for _ in range(5):
        await coordinator.poll_once(SOURCE)
    with pytest.raises(RateLimited):
        await coordinator.refetch(SOURCE, frozenset({str(t1)}))
    assert len(board.requests) == 1
    board.clear_faults()
    await clock.advance(601)
    await coordinator.poll_once(SOURCE)
    assert coordinator.sources[SOURCE].failures == 0
    assert len(await app[STORE].items_between(now - timedelta(days=1), clock.now())) == 1
