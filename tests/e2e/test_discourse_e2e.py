"""Fake Discourse + the real service: hand-computed numbers, faults, and the shared site budget."""

from __future__ import annotations

import asyncio
import io
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.simulator.discourse import (
    Delay,
    Disconnect,
    FakeDiscourse,
    Fault,
    HttpStatus,
    IpRateLimit,
    MalformedJson,
    NginxRateLimit,
    RateLimit,
    TruncatedBody,
)
from monitor.store import Store
from monitor.web.keys import COORDINATOR, METRICS, SCHEDULER, STORE
from tests.e2e.conftest import settle

KEY = "e2e-discourse-key-71c0ffee"
FIRST_POLL = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # Sunday noon
MODERATORS = '["lisa", "group:support", "group:staff"]'


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def write_config(
    path: Path,
    *,
    base_url: str,
    database_url: str,
    reply_match: str = "thread",
    sources: list[dict[str, str]] | None = None,
) -> Path:
    """Amsterdam office calendar (mon-fri 09:00-17:00), targets 60m office / 30m after hours."""
    blocks = []
    for source in sources or [{"name": "acme-forum"}]:
        lines = [
            "[[sources]]",
            'type = "discourse"',
            f'name = "{source["name"]}"',
            f'brand = "{source.get("brand", "acme")}"',
            f'base_url = "{base_url}"',
            f'api_key = "{KEY}"',
            f"moderators = {MODERATORS}",
            "backfill_days = 8",
            'request_timeout = "2s"',
            'poll_interval = "60s"',
        ]
        if "categories" in source:
            lines.append(f"categories = {source['categories']}")
        blocks.append("\n".join(lines))
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
"""
        + "\n\n".join(blocks)
        + "\n",
        encoding="utf-8",
    )
    return path


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape[(name, frozenset(labels.items()))]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(FIRST_POLL)


@pytest.fixture
async def forum(clock: FakeClock) -> AsyncIterator[FakeDiscourse]:
    fake = FakeDiscourse(api_key=KEY, clock=clock)
    for name in ("ann", "bob", "cat", "lisa"):
        fake.add_user(name)
    fake.add_user("sam", group="support")
    fake.add_user("mod", moderator=True)
    await fake.start()
    yield fake
    await fake.stop()


def script_history(forum: FakeDiscourse) -> dict[str, int]:
    """The conversation; times in UTC (Amsterdam is UTC+1 in November)."""
    ids: dict[str, int] = {}
    # T1, Monday 16 Nov. A: 11:00 local, office; Sam answers it directly after 25 min.
    t1 = ids["t1"] = forum.add_topic(
        title="Bestelling niet ontvangen",
        author="ann",
        created_at=utc(2026, 11, 16, 10, 0),
        text="Mijn bestelling is er nog niet",
    )
    forum.add_post(
        t1, author="sam", created_at=utc(2026, 11, 16, 10, 25), text="We kijken", reply_to=1
    )
    # B and C after hours (20:00, 20:10 local); a whisper at 20:20 is not an answer;
    # Lisa replies to B at 20:45.
    ids["b"] = forum.add_post(
        t1, author="bob", created_at=utc(2026, 11, 16, 19, 0), text="Ook bij mij"
    )
    ids["c"] = forum.add_post(
        t1, author="cat", created_at=utc(2026, 11, 16, 19, 10), text="Idem", reply_to=3
    )
    forum.whisper(t1, author="sam", created_at=utc(2026, 11, 16, 19, 20), text="magazijn bellen")
    forum.add_post(
        t1, author="lisa", created_at=utc(2026, 11, 16, 19, 45), text="Morgen!", reply_to=3
    )
    # T2, Friday 16:00 local: D is never answered; closing the topic is a small action, no answer.
    ids["t2"] = forum.add_topic(
        title="Waar blijft mijn pakket", author="ann", created_at=utc(2026, 11, 20, 15, 0), text="?"
    )
    forum.small_action(ids["t2"], author="mod", created_at=utc(2026, 11, 20, 15, 30))
    # T3, Saturday: E and F, one topic-level staff answer for both; G is hidden spam.
    t3 = ids["t3"] = forum.add_topic(
        title="Ook in de winkel", author="bob", created_at=utc(2026, 11, 21, 11, 0), text="Winkel?"
    )
    forum.add_post(t3, author="cat", created_at=utc(2026, 11, 21, 11, 10), text="Online?")
    forum.add_post(t3, author="mod", created_at=utc(2026, 11, 21, 11, 20), text="Allebei!")
    ids["g"] = forum.add_post(t3, author="ann", created_at=utc(2026, 11, 21, 12, 0), text="spam")
    forum.hide(ids["g"])
    # T4, Sunday: 21 brand status updates, then H (post 22) answered by post 23: both past the
    # first 20 posts, so only /t/{id}/posts.json brings them.
    t4 = ids["t4"] = forum.add_topic(
        title="Storing website", author="lisa", created_at=utc(2026, 11, 22, 8, 0), text="Storing"
    )
    for n in range(1, 21):
        forum.add_post(t4, author="lisa", created_at=utc(2026, 11, 22, 8, n), text=f"Update {n}")
    forum.add_post(t4, author="ann", created_at=utc(2026, 11, 22, 9, 0), text="Nog traag?")
    forum.add_post(
        t4, author="sam", created_at=utc(2026, 11, 22, 9, 20), text="Opgelost", reply_to=22
    )
    return ids


async def test_scripted_forum_conversation_gives_hand_computed_numbers(
    forum: FakeDiscourse, clock: FakeClock, tmp_path: Path, aiohttp_client: Any
) -> None:
    ids = script_history(forum)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            base_url=forum.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/e2e.db",
        )
    )
    app = create_app(config, clock=clock, start_polling=False)
    client = await aiohttp_client(app)
    coordinator = app[COORDINATOR]
    await coordinator.poll_once("acme-forum")
    # D was long past due when first seen: breached at once (after a thread re-read).
    await settle(lambda: app[SCHEDULER].fired == 1, "the breach of D")
    assert forum.requests_to(f"/t/{ids['t4']}/posts.json")

    # Live: a new after-hours question (I) and an edit of A's text.
    i_post = forum.add_post(
        ids["t3"], author="bob", created_at=utc(2026, 11, 22, 12, 10), text="En?"
    )
    forum.edit(forum.post_id(ids["t1"], 1), "Mijn bestelling (#123) is er nog niet")
    await clock.advance(15 * 60)
    await coordinator.poll_once("acme-forum")
    # Staff delete I before anybody answers it.
    forum.delete(i_post)
    await clock.advance(15 * 60)
    await coordinator.poll_once("acme-forum")
    assert coordinator.sources["acme-forum"].failures == 0

    store: Store = app[STORE]
    items = await store.items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    rows = sorted(
        (i.created_at.strftime("%d %H:%M"), i.period.value, i.state.value, i.response_seconds)
        for i in items
    )
    assert rows == [
        ("16 10:00", "office_hours", "answered_in_time", 1500.0),  # A
        ("16 19:00", "after_hours", "answered_late", 2700.0),  # B (the whisper is no answer)
        ("16 19:10", "after_hours", "answered_late", 2100.0),  # C
        ("20 15:00", "office_hours", "breached", None),  # D (the small action is no answer)
        ("21 11:00", "after_hours", "answered_in_time", 1200.0),  # E
        ("21 11:10", "after_hours", "answered_in_time", 600.0),  # F
        ("21 12:00", "after_hours", "dismissed", None),  # G hidden
        ("22 09:00", "after_hours", "answered_in_time", 1200.0),  # H, post 22 of 23
        ("22 12:10", "after_hours", "dismissed", None),  # I deleted
    ]
    by_time = {i.created_at: i for i in items}
    assert [by_time[t].weekend for t in sorted(by_time)] == [False] * 4 + [True] * 5
    assert by_time[utc(2026, 11, 21, 12, 0)].dismissed_reason == "hidden"
    assert by_time[utc(2026, 11, 22, 12, 10)].dismissed_reason == "deleted"
    responders = {i.created_at.strftime("%d %H:%M"): i.responder for i in items if i.responder}
    assert responders == {
        "16 10:00": "sam",
        "16 19:00": "lisa",
        "16 19:10": "lisa",
        "21 11:00": "mod",
        "21 11:10": "mod",
        "22 09:00": "sam",
    }

    # The edit changed the text, never created_at; the deleted post is a tombstone.
    messages = {m.message.platform_id: m for m in await store.all_messages("acme-forum")}
    a = messages[str(forum.post_id(ids["t1"], 1))]
    assert a.message.text == "Mijn bestelling (#123) is er nog niet" and a.edited
    assert a.message.created_at == utc(2026, 11, 16, 10, 0)
    assert messages[str(i_post)].message.deleted is True
    assert len(messages) == 5 + 1 + 4 + 23 + 1  # whisper and small action never stored

    scrape = samples(await (await client.get("/metrics")).text())
    acme = {"brand": "acme", "source": "acme-forum"}
    office, after = {**acme, "period": "office_hours"}, {**acme, "period": "after_hours"}
    assert value(scrape, "webcare_items_total", **office) == 2
    assert value(scrape, "webcare_items_total", **after) == 7
    assert value(scrape, "webcare_responses_total", **office, outcome="in_time") == 1
    assert value(scrape, "webcare_responses_total", **office, outcome="late") == 0
    assert value(scrape, "webcare_responses_total", **after, outcome="in_time") == 3
    assert value(scrape, "webcare_responses_total", **after, outcome="late") == 2
    assert value(scrape, "webcare_first_response_seconds_sum", **office) == 1500
    assert value(scrape, "webcare_first_response_seconds_sum", **after) == 7800
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
    assert value(scrape, "webcare_sla_breaches_total", **office) == 1
    assert value(scrape, "webcare_sla_breaches_total", **after) == 0
    assert value(scrape, "webcare_open_items", **office, state="breached") == 1
    assert value(scrape, "webcare_open_items", **after, state="open") == 0
    # Only I arrived after tracking start: seen 5 minutes after it was posted.
    assert value(scrape, "webcare_detection_lag_seconds_count", **acme) == 1
    assert value(scrape, "webcare_detection_lag_seconds_sum", **acme) == 300
    # sam, lisa and mod answered 2 each; none is in a roster: the label is `other` (issue 18).
    assert value(scrape, "webcare_moderator_responses_total", **acme, moderator="other") == 6
    assert value(scrape, "webcare_source_up", **acme, platform="discourse") == 1


async def test_direct_reply_mode_counts_only_replies_to_the_item(
    forum: FakeDiscourse, clock: FakeClock, tmp_path: Path, aiohttp_client: Any
) -> None:
    script_history(forum)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            base_url=forum.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/e2e.db",
            reply_match="direct",
        )
    )
    app = create_app(config, clock=clock, start_polling=False)
    await aiohttp_client(app)
    await app[COORDINATOR].poll_once("acme-forum")
    items = await app[STORE].items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    answered = {i.created_at.strftime("%d %H:%M"): i.response_seconds for i in items}
    assert answered == {
        "16 10:00": 1500.0,  # A: reply_to_post_number 1
        "16 19:00": 2700.0,  # B: Lisa replied to post 3
        "16 19:10": None,  # C: Lisa's reply was to B, not to C
        "20 15:00": None,
        "21 11:00": 1200.0,  # E: a topic-level reply answers the first post
        "21 11:10": None,  # F: thread-level answers do not count in direct mode
        "21 12:00": None,
        "22 09:00": 1200.0,  # H
    }


# --- faults -------------------------------------------------------------------------------------

# (fault, reason label, the least delay before the next poll: the server's wait)
FAULTS: list[tuple[Fault | str, str, float]] = [
    (RateLimit(wait_seconds=39), "rate_limited", 39),
    (IpRateLimit(wait_seconds=8), "rate_limited", 8),
    (NginxRateLimit(), "rate_limited", 60),  # no Retry-After: the whole admin API window
    (HttpStatus(status=500), "transient", 0),
    (HttpStatus(status=502, body="<html>502 Bad Gateway</html>"), "transient", 0),
    (Delay(seconds=5), "transient", 0),  # longer than request_timeout = 2s
    (MalformedJson(), "transient", 0),
    (TruncatedBody(), "transient", 0),
    (Disconnect(), "transient", 0),
    ("revoke", "auth", 0),
]


async def test_every_fault_marks_the_forum_down_once_and_nothing_is_lost(
    forum: FakeDiscourse, clock: FakeClock, tmp_path: Path, aiohttp_client: Any
) -> None:
    logs = io.StringIO()
    configure_logging(level="debug", fmt="json", secrets=[KEY], stream=logs)
    topic = forum.add_topic(title="Vraag", author="ann", created_at=utc(2026, 11, 22, 11), text="?")
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            base_url=forum.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/f.db",
        )
    )
    app = create_app(config, clock=clock, start_polling=False, rng=random.Random(1))
    await aiohttp_client(app)
    coordinator, metrics = app[COORDINATOR], app[METRICS]
    up = metrics.source_up.labels("acme", "acme-forum", "discourse")
    await coordinator.poll_once("acme-forum")
    assert up._value.get() == 1

    for number, (fault, reason, least_delay) in enumerate(FAULTS):
        # Traffic keeps arriving during the outage; it must be there after recovery.
        forum.add_post(topic, author="bob", created_at=clock.now(), text=f"#{number}")
        if fault == "revoke":
            forum.revoke_key()
        else:
            assert not isinstance(fault, str)
            forum.inject(fault, times=None)
        errors_before = metrics.poll_errors.labels("acme", "acme-forum", reason)._value.get()
        sent_before = len(forum.requests)
        delay = await coordinator.poll_once("acme-forum")
        assert up._value.get() == 0, fault
        assert (
            metrics.poll_errors.labels("acme", "acme-forum", reason)._value.get()
            == errors_before + 1
        )
        # One request per failed poll (aiohttp re-sends once after a dropped connection).
        assert len(forum.requests) - sent_before <= 2, fault
        assert delay >= least_delay, fault
        forum.clear_faults()
        forum.restore_key()
        # Like the coordinator loop: wait out the delay (the site budget may be blocked).
        await clock.advance(delay)

    await coordinator.poll_once("acme-forum")
    assert up._value.get() == 1
    items = await app[STORE].items_between(utc(2026, 11, 1), utc(2026, 12, 1))
    assert len(items) == 1 + len(FAULTS)

    events = [orjson.loads(line)["event"] for line in logs.getvalue().splitlines()]
    assert events.count("source down") == 1
    assert events.count("source recovered") == 1
    assert KEY not in logs.getvalue()


# --- the shared site budget -----------------------------------------------------------------------


async def drive(clock: FakeClock, forum: FakeDiscourse, work: list[Awaitable[Any]]) -> None:
    """Run `work`, moving the fake clock to the next sleeper whenever the wire is quiet.

    The clock only moves while no request is on its way, so the fake's per-minute counts and
    the service's budget see the same instants.
    """
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        for _ in range(5000):
            quiet, seen = 0, len(forum.requests)
            while quiet < 3 and not all(t.done() for t in tasks):
                await asyncio.sleep(0.01)
                busy = forum.in_flight > 0 or len(forum.requests) != seen
                quiet, seen = (0 if busy else quiet + 1), len(forum.requests)
            if all(t.done() for t in tasks):
                break
            pending = clock.pending_sleeps
            if pending:
                await clock.advance(max(0.0, (pending[0] - clock.now()).total_seconds()))
        else:
            raise AssertionError("the polling loops never finished")
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result


def polling_loop(
    app: web.Application, clock: FakeClock, name: str, until: datetime
) -> Callable[[], Awaitable[None]]:
    """The coordinator's own loop (poll, sleep the delay it returns), stopping at `until`."""

    async def run() -> None:
        while clock.now() < until:
            delay = await app[COORDINATOR].poll_once(name)
            await clock.sleep(delay)

    return run


async def test_two_sources_on_one_site_share_60_requests_a_minute(
    clock: FakeClock, tmp_path: Path, aiohttp_client: Any
) -> None:
    forum = FakeDiscourse(api_key=KEY, clock=clock, admin_api_per_minute=60)
    forum.add_user("ann")
    support, shop = forum.add_category("support"), forum.add_category("shop")
    for n in range(40):
        for category in (support, shop):
            forum.add_topic(
                title=f"Vraag {category}-{n}",
                author="ann",
                created_at=FIRST_POLL - timedelta(hours=48) + timedelta(minutes=n),
                text="?",
                category_id=category,
            )
    await forum.start()
    try:
        config = load_config(
            write_config(
                tmp_path / "c.toml",
                base_url=forum.base_url,
                database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db",
                sources=[
                    {"name": "forum-support", "categories": f"[{support}]"},
                    {"name": "forum-shop", "brand": "shop", "categories": f"[{shop}]"},
                ],
            )
        )
        app = create_app(config, clock=clock, start_polling=False, rng=random.Random(2))
        await aiohttp_client(app)
        until = FIRST_POLL + timedelta(minutes=5)
        loops = [
            polling_loop(app, clock, name, until)() for name in ("forum-support", "forum-shop")
        ]
        await drive(clock, forum, loops)

        # 2 × (2 list pages + 40 topics) = 84 requests for the first polls alone: more than a
        # minute's budget, spread so that no minute ever saw more than 60, and no 429.
        assert forum.max_requests_per_minute() <= 60
        assert forum.count_status(429) == 0
        first_round = sorted(r.at for r in forum.requests)[:84]
        assert first_round[-1] - first_round[0] >= timedelta(seconds=60)
        items = await app[STORE].items_between(utc(2026, 1, 1), utc(2027, 1, 1))
        assert len(items) == 80
        assert {i.source for i in items} == {"forum-support", "forum-shop"}
    finally:
        await forum.stop()


async def test_a_throttled_site_gets_a_bounded_number_of_requests(
    forum: FakeDiscourse, clock: FakeClock, tmp_path: Path, aiohttp_client: Any
) -> None:
    topic = forum.add_topic(title="Vraag", author="ann", created_at=utc(2026, 11, 22, 11), text="?")
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            base_url=forum.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db",
            sources=[{"name": "forum-a"}, {"name": "forum-b", "brand": "other"}],
        )
    )
    app = create_app(config, clock=clock, start_polling=False, rng=random.Random(3))
    await aiohttp_client(app)
    forum.inject(RateLimit(wait_seconds=45), times=None)
    forum.add_post(topic, author="bob", created_at=clock.now(), text="during the outage")
    until = FIRST_POLL + timedelta(minutes=10)
    loops = [polling_loop(app, clock, name, until)() for name in ("forum-a", "forum-b")]
    await drive(clock, forum, loops)

    throttled = forum.requests
    assert all(r.status == 429 for r in throttled)
    # Each 429 blocks the whole site for 45 s. The two sources may each have one request on
    # the wire when a block ends, so: at most one request per source per 45 s.
    instants = sorted({r.at for r in throttled})
    assert all(b - a >= timedelta(seconds=45) for a, b in itertools.pairwise(instants))
    assert all(sum(r.at == t for r in throttled) <= 2 for t in instants)
    assert 2 <= len(throttled) <= 2 * (600 // 45 + 1)

    forum.clear_faults()
    await clock.advance(60)
    for name in ("forum-a", "forum-b"):
        await app[COORDINATOR].poll_once(name)
    items = await app[STORE].items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    assert sorted((i.source, i.created_at) for i in items) == sorted(
        (source, moment)
        for source in ("forum-a", "forum-b")
        for moment in (utc(2026, 11, 22, 11), FIRST_POLL)
    )
