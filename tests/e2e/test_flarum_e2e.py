"""Fake Flarum + the real service + a scrape: hand-computed numbers, and faults survived."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.domain import ItemState
from monitor.logging import configure_logging
from monitor.simulator.flarum import (
    ADMIN_USER,
    MOD_GROUP,
    Delay,
    Disconnect,
    FakeFlarum,
    Fault,
    FlarumError,
    HttpStatus,
    MalformedJson,
    TruncatedBody,
)
from monitor.store import Store
from monitor.web.keys import COORDINATOR, METRICS, SCHEDULER, STORE
from tests.e2e.conftest import settle

KEY = "e2e-flarum-key-5b1c0e9d7a"
SOURCE = "acme-forum"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class Cast:
    """The forum's users: consumers and the three kinds of configured moderator."""

    ann: int
    bob: int
    cat: int
    support: int  # moderator by username
    eve: int  # moderator by user id
    mia: int  # moderator through the Mods group ("group:staff"), like the admin

    @classmethod
    def create(cls, forum: FakeFlarum) -> Cast:
        return cls(
            ann=forum.add_user("ann", display_name="Ann"),
            bob=forum.add_user("bob", display_name="Bob"),
            cat=forum.add_user("cat", display_name="Cat"),
            support=forum.add_user("acme_support", display_name="Acme Support"),
            eve=forum.add_user("eve", display_name="Eve"),
            mia=forum.add_user("mia", display_name="Mia", groups=[MOD_GROUP]),
        )


@pytest.fixture
async def forum() -> AsyncIterator[FakeFlarum]:
    fake = FakeFlarum(api_key=KEY)
    await fake.start()
    yield fake
    await fake.stop()


def write_config(
    path: Path,
    *,
    forum: FakeFlarum,
    cast: Cast,
    database_url: str,
    reply_match: str = "thread",
    request_timeout: float = 2.0,
) -> Path:
    """The Amsterdam office calendar (mon-fri 09:00-17:00), 60m office / 30m after hours."""
    path.write_text(
        f"""
database_url = "{database_url}"
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
type = "flarum"
name = "{SOURCE}"
brand = "acme"
base_url = "{forum.base_url}"
api_key = "{KEY}"
user_id = {ADMIN_USER}
tags = ["support"]
moderators = ["acme_support", "id:{cast.eve}", "group:staff"]
poll_interval = "60s"
request_timeout = {request_timeout}
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


def script_history(forum: FakeFlarum, cast: Cast) -> dict[str, int]:
    """The conversation; times in UTC (Amsterdam is UTC+1 in November 2026)."""
    ids: dict[str, int] = {}
    support, offtopic = forum.add_tag("support"), forum.add_tag("offtopic")
    # Monday 16 Nov, 11:00 local (office): acme_support answers the topic after 20 min.
    d1, ids["q1"] = forum.add_discussion(
        title="Shipping to Belgium?",
        author=cast.ann,
        created_at=utc(2026, 11, 16, 10, 0),
        content="Do you ship to Belgium?",
        tags=[support],
    )
    ids["d1"] = d1
    forum.add_post(d1, author=cast.support, created_at=utc(2026, 11, 16, 10, 20), content="Yes")
    # 20:00 local (after hours): Bob asks, Cat replies to Bob; a rename (an event post); the
    # admin answers Bob directly at 20:45 (late: 45 min > 30 min).
    ids["q2"] = forum.add_post(
        d1, author=cast.bob, created_at=utc(2026, 11, 16, 19, 0), content="And to Germany?"
    )
    ids["q3"] = forum.add_post(
        d1,
        author=cast.cat,
        created_at=utc(2026, 11, 16, 19, 10),
        content="Same question",
        reply_to=ids["q2"],
    )
    forum.rename(d1, "Shipping to Belgium and Germany?", at=utc(2026, 11, 16, 19, 20))
    forum.add_post(
        d1,
        author=ADMIN_USER,
        created_at=utc(2026, 11, 16, 19, 45),
        content="2 days",
        reply_to=ids["q2"],
    )
    # Friday 16:00 local (office): nobody answers; Bob adds a "me too" at 16:05.
    d3, ids["q4"] = forum.add_discussion(
        title="Where is my order?",
        author=cast.ann,
        created_at=utc(2026, 11, 20, 15, 0),
        content="Ordered a week ago",
        tags=[support],
    )
    ids["d3"] = d3
    ids["q5"] = forum.add_post(
        d3, author=cast.bob, created_at=utc(2026, 11, 20, 15, 5), content="Me too"
    )
    # Saturday: a live Q&A longer than one page (50 posts); the questions sit on page 2.
    d2, _ = forum.add_discussion(
        title="Weekend deal",
        author=cast.support,
        created_at=utc(2026, 11, 21, 10, 0),
        content="Ask us anything!",
        tags=[support],
    )
    forum.event_post(
        d2, type="discussionStickied", content={"sticky": True}, created_at=utc(2026, 11, 21, 10)
    )
    for minute in range(1, 55):
        forum.add_post(
            d2,
            author=cast.support,
            created_at=utc(2026, 11, 21, 10, minute),
            content=f"Deal #{minute}",
        )
    ids["q6"] = forum.add_post(
        d2, author=cast.ann, created_at=utc(2026, 11, 21, 11, 0), content="In store too?"
    )
    ids["q7"] = forum.add_post(
        d2, author=cast.bob, created_at=utc(2026, 11, 21, 11, 10), content="Online too?"
    )
    forum.add_post(
        d2,
        author=cast.eve,
        created_at=utc(2026, 11, 21, 11, 20),
        content="Both, all weekend!",
        reply_to=ids["q6"],
    )
    ids["spam"] = forum.add_post(
        d2, author=cast.cat, created_at=utc(2026, 11, 21, 11, 30), content="cheap pills"
    )
    forum.hide(ids["spam"], at=utc(2026, 11, 21, 11, 35))
    # Outside the configured tags: never read.
    forum.add_discussion(
        title="Match tonight",
        author=cast.bob,
        created_at=utc(2026, 11, 21, 12, 0),
        content="Anyone watching?",
        tags=[offtopic],
    )
    return ids


async def test_scripted_conversation_gives_hand_computed_numbers(
    forum: FakeFlarum, tmp_path: Path, aiohttp_client: Any
) -> None:
    cast = Cast.create(forum)
    ids = script_history(forum, cast)
    database_url = f"sqlite+aiosqlite:///{tmp_path}/e2e.db"
    config = load_config(
        write_config(tmp_path / "c.toml", forum=forum, cast=cast, database_url=database_url)
    )
    clock = FakeClock(utc(2026, 11, 22, 12, 0))  # first poll: Sunday noon
    app = create_app(config, clock=clock, start_polling=False)
    client = await aiohttp_client(app)
    coordinator = app[COORDINATOR]
    await coordinator.poll_once(SOURCE)
    # Both Friday posts are long past due: re-fetched (thread only), then breached.
    await settle(lambda: app[SCHEDULER].fired == 2, "the breaches of the two Friday posts")

    # Sunday: Bob asks again on the Monday topic and a Mod answers him; Ann edits her question;
    # Bob deletes his Friday "me too" for good.
    late = forum.add_post(
        ids["d1"], author=cast.bob, created_at=utc(2026, 11, 22, 12, 30), content="Still?"
    )
    forum.add_post(
        ids["d1"],
        author=cast.mia,
        created_at=utc(2026, 11, 22, 12, 40),
        content="Yes, until the 20th",
        reply_to=late,
    )
    forum.edit(
        ids["q1"], "Do you ship to Belgium and the Netherlands?", at=utc(2026, 11, 22, 12, 45)
    )
    forum.delete(ids["q5"])
    await clock.advance(3600)
    await coordinator.poll_once(SOURCE)
    assert coordinator.sources[SOURCE].failures == 0

    store: Store = app[STORE]
    items = await store.items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    rows = sorted(
        (i.created_at.strftime("%d %H:%M"), i.period.value, i.state.value, i.response_seconds)
        for i in items
    )
    assert rows == [
        ("16 10:00", "office_hours", "answered_in_time", 1200.0),
        ("16 19:00", "after_hours", "answered_late", 2700.0),
        ("16 19:10", "after_hours", "answered_late", 2100.0),  # thread mode: the same answer
        ("20 15:00", "office_hours", "breached", None),
        ("20 15:05", "office_hours", "dismissed", None),  # deleted after its breach
        ("21 11:00", "after_hours", "answered_in_time", 1200.0),  # on page 2 of the topic
        ("21 11:10", "after_hours", "answered_in_time", 600.0),
        ("21 11:30", "after_hours", "dismissed", None),  # hidden by a moderator
        ("22 12:30", "after_hours", "answered_in_time", 600.0),
    ]
    assert [i.weekend for i in sorted(items, key=lambda i: i.created_at)] == [
        *[False] * 5,
        *[True] * 4,
    ]
    reasons = {i.created_at.strftime("%d %H:%M"): i.dismissed_reason for i in items}
    assert (reasons["20 15:05"], reasons["21 11:30"]) == ("deleted", "hidden")
    responders = sorted(i.responder for i in items if i.responder is not None)
    assert responders == ["acme_support", "admin", "admin", "eve", "eve", "mia"]

    # The edit changed the text, never the time; the event posts and the off-topic
    # discussion were never stored.
    messages = {m.message.platform_id: m for m in await store.all_messages(SOURCE)}
    edited = messages[str(ids["q1"])]
    assert edited.message.text == "Do you ship to Belgium and the Netherlands?"
    assert edited.edited is True
    assert edited.message.created_at == utc(2026, 11, 16, 10, 0)
    assert messages[str(ids["q5"])].message.deleted is True  # a tombstone, kept
    assert len(messages) == 7 + 59 + 2  # d1 (7 comments), d2 (59), d3 (2); no event posts
    assert all("Match" not in m.message.text for m in messages.values())

    scrape = samples(await (await client.get("/metrics")).text())
    acme = {"brand": "acme", "source": SOURCE}
    office, after = {**acme, "period": "office_hours"}, {**acme, "period": "after_hours"}
    assert value(scrape, "webcare_items_total", **office) == 3
    assert value(scrape, "webcare_items_total", **after) == 6
    assert value(scrape, "webcare_responses_total", **office, outcome="in_time") == 1
    assert value(scrape, "webcare_responses_total", **office, outcome="late") == 0
    assert value(scrape, "webcare_responses_total", **after, outcome="in_time") == 3
    assert value(scrape, "webcare_responses_total", **after, outcome="late") == 2
    assert value(scrape, "webcare_first_response_seconds_count", **after) == 5
    assert value(scrape, "webcare_first_response_seconds_sum", **after) == 7200
    assert value(scrape, "webcare_first_response_seconds_sum", **office) == 1200
    assert (
        value(
            scrape,
            "webcare_first_response_sla_seconds_bucket",
            brand="acme",
            period="after_hours",
            le="1800.0",
        )
        == 3
    )
    assert value(scrape, "webcare_items_dismissed_total", **acme, reason="hidden") == 1
    assert value(scrape, "webcare_items_dismissed_total", **acme, reason="deleted") == 1
    assert value(scrape, "webcare_sla_breaches_total", **office) == 2
    assert value(scrape, "webcare_sla_breaches_total", **after) == 0
    assert value(scrape, "webcare_open_items", **office, state="breached") == 1
    assert value(scrape, "webcare_open_items", **after, state="open") == 0
    oldest = value(scrape, "webcare_oldest_open_item_age_seconds", **acme)
    assert oldest == (clock.now() - utc(2026, 11, 20, 15, 0)).total_seconds()
    # Only Sunday's question came after tracking start: seen 30 minutes late.
    assert value(scrape, "webcare_detection_lag_seconds_count", **acme) == 1
    assert value(scrape, "webcare_detection_lag_seconds_sum", **acme) == 1800
    assert value(scrape, "webcare_source_up", **acme, platform="flarum") == 1
    # acme_support 1, admin 2, eve 2, mia 1; none is in a roster: `other` (issue 18).
    assert value(scrape, "webcare_moderator_responses_total", **acme, moderator="other") == 6


async def test_direct_reply_mode_follows_mentions(
    forum: FakeFlarum, tmp_path: Path, aiohttp_client: Any
) -> None:
    cast = Cast.create(forum)
    script_history(forum, cast)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            forum=forum,
            cast=cast,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/e2e.db",
            reply_match="direct",
        )
    )
    app = create_app(config, clock=FakeClock(utc(2026, 11, 22, 12, 0)), start_polling=False)
    await aiohttp_client(app)
    await app[COORDINATOR].poll_once(SOURCE)
    items = await app[STORE].items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    answered = {i.created_at.strftime("%d %H:%M"): i.response_seconds for i in items}
    assert answered == {
        "16 10:00": 1200.0,  # a plain reply answers the topic's first post
        "16 19:00": 2700.0,  # the admin's reply mentions Bob's post
        "16 19:10": None,  # Cat got no reply of her own
        "20 15:00": None,
        "20 15:05": None,
        "21 11:00": 1200.0,  # Eve's reply mentions Ann's question
        "21 11:10": None,
        "21 11:30": None,
    }


# --- faults -------------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)


async def answered_thread(forum: FakeFlarum, cast: Cast) -> int:
    """A support discussion whose only question is answered (no deadlines to fire)."""
    support = forum.add_tag("support")
    did, _ = forum.add_discussion(
        title="Hi",
        author=cast.ann,
        created_at=NOW - timedelta(hours=1),
        content="?",
        tags=[support],
    )
    forum.add_post(did, author=cast.support, created_at=NOW - timedelta(minutes=50), content="!")
    return did


@dataclass(frozen=True, kw_only=True)
class Outage:
    """How the forum fails for one whole poll, and the poll error reason we expect."""

    reason: str
    fault: Fault | None = None
    revoke: bool = False
    as_guest: bool = False
    at_least: float = 0.0  # the delay the server asked for


OUTAGES = [
    Outage(fault=FlarumError(status=429, code="too_many_requests"), reason="rate_limited"),
    Outage(
        fault=FlarumError(status=429, code="too_many_requests", headers={"Retry-After": "120"}),
        reason="rate_limited",
        at_least=120,
    ),
    Outage(
        fault=HttpStatus(status=429, body="Too Many Requests", headers={"Retry-After": "600"}),
        reason="rate_limited",
        at_least=600,
    ),
    Outage(fault=FlarumError(status=500, code="unknown"), reason="transient"),
    Outage(fault=HttpStatus(status=502), reason="transient"),
    Outage(fault=FlarumError(status=503, code="maintenance"), reason="transient"),
    Outage(fault=Delay(seconds=5), reason="transient"),  # longer than request_timeout
    Outage(fault=MalformedJson(), reason="transient"),
    Outage(fault=TruncatedBody(), reason="transient"),
    Outage(fault=Disconnect(), reason="transient"),
    Outage(revoke=True, reason="auth"),  # 401 not_authenticated
    Outage(revoke=True, as_guest=True, reason="auth"),  # what Flarum core does: a guest
    Outage(fault=FlarumError(status=403, code="permission_denied"), reason="auth"),
]


async def test_every_fault_marks_the_source_down_once_and_nothing_is_lost(
    forum: FakeFlarum, tmp_path: Path, aiohttp_client: Any
) -> None:
    logs = io.StringIO()
    configure_logging(level="debug", fmt="json", secrets=[KEY], stream=logs)
    cast = Cast.create(forum)
    did = await answered_thread(forum, cast)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            forum=forum,
            cast=cast,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/f.db",
            request_timeout=0.5,
        )
    )
    app = create_app(config, clock=FakeClock(NOW), start_polling=False)
    await aiohttp_client(app)
    coordinator, metrics = app[COORDINATOR], app[METRICS]
    up = metrics.source_up.labels("acme", SOURCE, "flarum")
    await coordinator.poll_once(SOURCE)
    assert up._value.get() == 1

    delays = []
    for number, outage in enumerate(OUTAGES):
        # Consumers keep posting during the outage; every post must be there afterwards.
        forum.add_post(
            did, author=cast.bob, created_at=NOW + timedelta(minutes=number), content=f"#{number}"
        )
        if outage.fault is not None:
            forum.inject(outage.fault, times=None)  # broken for the whole poll
        if outage.revoke:
            forum.revoke_api_key(as_guest=outage.as_guest)
        before = len(forum.requests)
        errors = metrics.poll_errors.labels("acme", SOURCE, outage.reason)
        errors_before = errors._value.get()
        delays.append(await coordinator.poll_once(SOURCE))
        assert up._value.get() == 0, outage
        assert errors._value.get() == errors_before + 1, outage
        assert delays[-1] >= outage.at_least, outage
        # The first failing request ends the poll (a dropped connection: aiohttp retries once).
        assert len(forum.requests) - before == (2 if isinstance(outage.fault, Disconnect) else 1)
        forum.clear_faults()
        forum.restore_api_key()

    await coordinator.poll_once(SOURCE)
    assert up._value.get() == 1
    items = await app[STORE].items_between(NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert len(items) == 1 + len(OUTAGES)
    assert all(i.state is not ItemState.DISMISSED for i in items)

    events = [orjson.loads(line)["event"] for line in logs.getvalue().splitlines()]
    assert events.count("source down") == 1
    assert events.count("source recovered") == 1
    assert KEY not in logs.getvalue()


@pytest.mark.parametrize(
    ("retry_after", "max_polls"),
    [
        # Flarum's own throttle sends no Retry-After: our backoff (10 s doubling, capped at
        # 900 s, at least half of each nominal delay) allows at most 14 polls in an hour.
        (None, 14),
        # A proxy saying Retry-After: 300 allows at most one poll per 5 minutes.
        ("300", 13),
    ],
)
async def test_a_throttled_forum_gets_a_bounded_number_of_requests(
    forum: FakeFlarum,
    tmp_path: Path,
    aiohttp_client: Any,
    retry_after: str | None,
    max_polls: int,
) -> None:
    cast = Cast.create(forum)
    did = await answered_thread(forum, cast)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            forum=forum,
            cast=cast,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db",
        )
    )
    clock = FakeClock(NOW)
    app = create_app(config, clock=clock, start_polling=False)
    await aiohttp_client(app)
    coordinator = app[COORDINATOR]
    await coordinator.poll_once(SOURCE)

    headers = {"Retry-After": retry_after} if retry_after else {}
    forum.inject(FlarumError(status=429, code="too_many_requests", headers=headers), times=None)
    question = forum.add_post(did, author=cast.bob, created_at=NOW, content="Anyone?")
    before = len(forum.requests)
    polls, elapsed = 0, 0.0
    while elapsed < 3600:  # the coordinator's loop, one hour of fake time
        delay = await coordinator.poll_once(SOURCE)
        polls += 1
        if retry_after:
            assert delay >= float(retry_after)
        elapsed += delay
        await clock.advance(delay)
    assert polls <= max_polls
    assert len(forum.requests) - before == polls  # one request per throttled poll

    forum.clear_faults()
    await coordinator.poll_once(SOURCE)
    assert coordinator.sources[SOURCE].failures == 0
    stored = {m.message.platform_id for m in await app[STORE].all_messages(SOURCE)}
    assert str(question) in stored
