"""Fake Graph API + the real service + a scrape: hand-computed numbers must come out exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.domain import ItemState
from monitor.simulator.graph_api import FakeGraphApi
from monitor.store import Store
from monitor.web.keys import COMPLIANCE, COORDINATOR, SCHEDULER, STORE
from tests.e2e.conftest import settle, write_config

ANN = ("9001", "Ann Consumer")
BOB = ("9002", "Bob Consumer")
CAT = ("9003", "Cat Consumer")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape keyed by (name, labels)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape[(name, frozenset(labels.items()))]


def script_history(graph: FakeGraphApi) -> dict[str, str]:
    """The conversation of the test; times in UTC (Amsterdam is UTC+1 in November)."""
    ids: dict[str, str] = {}
    # Monday 16 Nov, page post at 10:00 local.
    ids["p1"] = graph.add_post(created_time=utc(2026, 11, 16, 9, 0), message="New winter coats")
    # 11:00 local, office hours; the page replies directly after 25 min: in time (60 min).
    ids["c1"] = graph.add_comment(
        post_id=ids["p1"], created_time=utc(2026, 11, 16, 10, 0), message="Sizes?", author=ANN
    )
    graph.add_comment(
        post_id=ids["p1"],
        created_time=utc(2026, 11, 16, 10, 25),
        message="S to XXL",
        parent_id=ids["c1"],
    )
    # 20:00 local, after hours; a nested consumer reply at 20:10; the page answers at 20:45.
    ids["c2"] = graph.add_comment(
        post_id=ids["p1"], created_time=utc(2026, 11, 16, 19, 0), message="Delivery?", author=BOB
    )
    ids["c3"] = graph.add_comment(
        post_id=ids["p1"],
        created_time=utc(2026, 11, 16, 19, 10),
        message="Same question",
        author=CAT,
        parent_id=ids["c2"],
    )
    graph.add_comment(
        post_id=ids["p1"],
        created_time=utc(2026, 11, 16, 19, 45),
        message="2 days",
        parent_id=ids["c2"],
    )
    # Friday 16:00 local: a visitor post nobody answers.
    ids["v1"] = graph.add_post(
        created_time=utc(2026, 11, 20, 15, 0), message="Where is my order?", author=ANN
    )
    # Saturday: two questions, one thread-level page comment answers both; one hidden comment.
    ids["p2"] = graph.add_post(created_time=utc(2026, 11, 21, 10, 0), message="Weekend deal")
    ids["c4"] = graph.add_comment(
        post_id=ids["p2"], created_time=utc(2026, 11, 21, 11, 0), message="In store?", author=BOB
    )
    ids["c5"] = graph.add_comment(
        post_id=ids["p2"], created_time=utc(2026, 11, 21, 11, 10), message="Online?", author=CAT
    )
    graph.add_comment(
        post_id=ids["p2"], created_time=utc(2026, 11, 21, 11, 20), message="Both, all weekend!"
    )
    ids["c6"] = graph.add_comment(
        post_id=ids["p2"], created_time=utc(2026, 11, 21, 12, 0), message="spam spam", author=ANN
    )
    graph.hide(ids["c6"])
    return ids


async def test_scripted_conversation_gives_hand_computed_numbers(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    ids = script_history(graph)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            api_base_url=graph.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/e2e.db",
        )
    )
    clock = FakeClock(utc(2026, 11, 22, 12, 0))  # first poll: Sunday noon
    app = create_app(config, clock=clock, start_polling=False)
    client = await aiohttp_client(app)
    coordinator = app[COORDINATOR]
    await coordinator.poll_once("acme-fb")
    # The unanswered visitor post is long past due: the scheduler breaches it at once.
    await settle(lambda: app[SCHEDULER].fired == 1, "the breach of the visitor post")

    # A late comment on the old Monday post: `feed?since=` no longer returns that post.
    graph.add_comment(
        post_id=ids["p1"], created_time=utc(2026, 11, 22, 12, 30), message="Still?", author=BOB
    )
    graph.add_comment(post_id=ids["p1"], created_time=utc(2026, 11, 22, 12, 40), message="Yes!")
    await clock.advance(3600)
    await coordinator.poll_once("acme-fb")
    assert coordinator.sources["acme-fb"].failures == 0

    store: Store = app[STORE]
    items = await store.items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    by_state = sorted(
        (i.created_at.strftime("%d %H:%M"), i.period.value, i.state.value, i.response_seconds)
        for i in items
    )
    assert by_state == [
        ("16 10:00", "office_hours", "answered_in_time", 1500.0),
        ("16 19:00", "after_hours", "answered_late", 2700.0),
        ("16 19:10", "after_hours", "answered_late", 2100.0),
        ("20 15:00", "office_hours", "breached", None),
        ("21 11:00", "after_hours", "answered_in_time", 1200.0),
        ("21 11:10", "after_hours", "answered_in_time", 600.0),
        ("21 12:00", "after_hours", "dismissed", None),
        ("22 12:30", "after_hours", "answered_in_time", 600.0),
    ]
    assert [i.weekend for i in items] == [False, False, False, False, True, True, True, True]
    assert {i.dismissed_reason for i in items if i.state is ItemState.DISMISSED} == {"hidden"}

    scrape = samples(await (await client.get("/metrics")).text())
    acme = {"brand": "acme", "source": "acme-fb"}
    office, after = {**acme, "period": "office_hours"}, {**acme, "period": "after_hours"}
    assert value(scrape, "webcare_items_total", **office) == 2
    assert value(scrape, "webcare_items_total", **after) == 6
    assert value(scrape, "webcare_responses_total", **office, outcome="in_time") == 1
    assert value(scrape, "webcare_responses_total", **office, outcome="late") == 0
    assert value(scrape, "webcare_responses_total", **after, outcome="in_time") == 3
    assert value(scrape, "webcare_responses_total", **after, outcome="late") == 2
    assert value(scrape, "webcare_first_response_seconds_count", **after) == 5
    assert value(scrape, "webcare_first_response_seconds_sum", **after) == 7200
    assert value(scrape, "webcare_first_response_seconds_sum", **office) == 1500
    # The brand's SLA buckets include the targets: 3 of 5 after-hours answers within 1800 s.
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
    # The visitor post was past due when first seen: breached at once (after a re-fetch).
    assert value(scrape, "webcare_open_items", **office, state="breached") == 1
    assert value(scrape, "webcare_open_items", **office, state="open") == 0
    assert value(scrape, "webcare_sla_breaches_total", **office) == 1
    assert value(scrape, "webcare_sla_breaches_total", **after) == 0
    assert value(scrape, "webcare_open_items", **after, state="open") == 0
    oldest = value(scrape, "webcare_oldest_open_item_age_seconds", **acme)
    assert oldest == (clock.now() - utc(2026, 11, 20, 15, 0)).total_seconds()
    # Only the comment made after tracking start has a detection lag: seen 30 min late.
    assert value(scrape, "webcare_detection_lag_seconds_count", **acme) == 1
    assert value(scrape, "webcare_detection_lag_seconds_sum", **acme) == 1800
    assert value(scrape, "webcare_source_up", **acme, platform="facebook_page") == 1
    assert value(scrape, "webcare_moderator_responses_total", **acme, moderator="other") == 6

    health = await client.get("/readyz")
    assert health.status == 200, await health.text()

    # Rolling compliance comes from the store: in_time / (in_time + late + breached_open).
    await app[COMPLIANCE].refresh(store, clock.now())
    expected = {
        ("office_hours", "30d"): 1 / 2,  # c1 in time, v1 breached
        ("after_hours", "30d"): 3 / 5,  # c4, c5, c7 in time; c2, c3 late; c6 dismissed
        ("office_hours", "7d"): 1 / 2,
        ("after_hours", "7d"): 3 / 5,
        ("after_hours", "1d"): 1.0,  # only c7 was created in the last day
    }
    assert compliance_samples(await (await client.get("/metrics")).text()) == expected

    # A restarted service on the same store serves the same compliance and recounts nothing
    # (the first stops first: a SQLite file serves one instance at a time).
    await client.close()
    again = create_app(config, clock=clock, start_polling=False)
    again_client = await aiohttp_client(again)
    rescrape = await (await again_client.get("/metrics")).text()
    assert compliance_samples(rescrape) == expected
    assert value(samples(rescrape), "webcare_items_total", **after) == 0


def compliance_samples(text: str) -> dict[tuple[str, str], float]:
    return {
        (labels["period"], labels["window"]): v
        for (name, key), v in samples(text).items()
        if name == "webcare_sla_compliance_ratio"
        for labels in [dict(key)]
    }


async def test_direct_reply_mode_ignores_thread_level_answers(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    script_history(graph)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            api_base_url=graph.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/e2e.db",
            reply_match="direct",
        )
    )
    app = create_app(config, clock=FakeClock(utc(2026, 11, 22, 12, 0)), start_polling=False)
    await aiohttp_client(app)
    await app[COORDINATOR].poll_once("acme-fb")
    items = await app[STORE].items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    answered = {i.created_at.strftime("%d %H:%M"): i.response_seconds for i in items}
    # c3 (a reply to c2) and the two Saturday questions got no direct reply.
    assert answered == {
        "16 10:00": 1500.0,
        "16 19:00": 2700.0,
        "16 19:10": None,
        "20 15:00": None,
        "21 11:00": None,
        "21 11:10": None,
        "21 12:00": None,
    }
