"""Facebook webhooks: handshake, signatures, every verb, replays, and no poll needed."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.domain import ItemState
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import COORDINATOR, METRICS, STORE
from tests.e2e.conftest import PAGE_ID, write_config
from tests.e2e.test_facebook_to_metrics import samples, value

SECRET = "app-secret-for-tests-31337"
VERIFY = "verify-me-please"
NOW = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
POST = f"{PAGE_ID}_1000001"
COMMENT = "1000001_1000002"


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def delivery(*values: dict[str, Any], page: str = PAGE_ID) -> bytes:
    changes = [{"field": "feed", "value": v} for v in values]
    return orjson.dumps(
        {
            "object": "page",
            "entry": [{"id": page, "time": int(NOW.timestamp()), "changes": changes}],
        }
    )


def comment(verb: str, *, at: datetime = NOW, **extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "item": "comment",
        "verb": verb,
        "post_id": POST,
        "comment_id": COMMENT,
        "parent_id": POST,
        "from": {"id": "9001", "name": "Ann"},
        "created_time": int(at.timestamp()),
        "message": "Is this in stock?",
    }
    value.update(extra)
    return value


async def start(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any) -> tuple[Any, Any]:
    extra = f'[facebook_webhook]\napp_secret = "{SECRET}"\nverify_token = "{VERIFY}"\n'
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/w.db",
    )
    path.write_text(path.read_text() + extra)
    clock = FakeClock(NOW + timedelta(seconds=2))
    # Polling never starts: everything below arrives by webhook only.
    app = create_app(load_config(path), clock=clock, start_polling=False)
    return app, await aiohttp_client(app)


async def item_states(app: Any) -> list[tuple[str, str | None]]:
    items = await app[STORE].items_between(NOW - timedelta(days=1), NOW + timedelta(days=1))
    return [(i.state.value, i.dismissed_reason) for i in items]


async def test_handshake_answers_the_challenge_only_with_the_right_token(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    _, client = await start(graph, tmp_path, aiohttp_client)
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    ok = await client.get("/webhooks/facebook", params=query)
    assert (ok.status, await ok.text()) == (200, "1158201444")
    bad = await client.get("/webhooks/facebook", params={**query, "hub.verify_token": "nope"})
    assert bad.status == 403


async def test_signatures_are_enforced_and_nothing_unsigned_is_stored(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app, client = await start(graph, tmp_path, aiohttp_client)
    body = delivery(comment("add"))
    missing = await client.post("/webhooks/facebook", data=body)
    wrong = await client.post("/webhooks/facebook", data=body, headers=sign(body, "not-it"))
    tampered = await client.post("/webhooks/facebook", data=body + b" ", headers=sign(body))
    assert [missing.status, wrong.status, tampered.status] == [403, 403, 403]
    assert await app[STORE].counts() == {"messages": 0, "items": 0}
    rejected = app[METRICS].webhook_deliveries.labels("facebook", "bad_signature")._value.get()
    assert rejected == 3
    garbage = b'{"entry": [{"changes": "no"'
    malformed = await client.post("/webhooks/facebook", data=garbage, headers=sign(garbage))
    assert malformed.status == 400


async def test_comment_arrives_by_webhook_without_any_poll_and_replays_are_stored_once(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app, client = await start(graph, tmp_path, aiohttp_client)
    body = delivery(comment("add"))
    for _ in range(3):  # Facebook retries deliveries for 36 hours
        response = await client.post("/webhooks/facebook", data=body, headers=sign(body))
        assert response.status == 200
    assert app[COORDINATOR].sources["acme-fb"].polls == 0
    # Nothing was read from the page (only the token's expiry was checked).
    assert [r.path for r in graph.requests if "debug_token" not in r.path] == []
    assert await app[STORE].counts() == {"messages": 1, "items": 1}
    scrape = samples(await (await client.get("/metrics")).text())
    labels = {"brand": "acme", "source": "acme-fb"}
    assert value(scrape, "webcare_items_total", **labels, period="after_hours") == 1
    assert value(scrape, "webcare_open_items", **labels, period="after_hours", state="open") == 1
    # Seen 2 s after it was posted (the fake clock): the detection lag says so.
    assert value(scrape, "webcare_detection_lag_seconds_sum", **labels) == 2
    assert (
        value(scrape, "webcare_webhook_deliveries_total", platform="facebook", outcome="accepted")
        == 3
    )


async def test_every_verb(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any) -> None:
    app, client = await start(graph, tmp_path, aiohttp_client)

    async def send(*values: dict[str, Any]) -> None:
        body = delivery(*values)
        response = await client.post("/webhooks/facebook", data=body, headers=sign(body))
        assert response.status == 200, await response.text()

    visitor_post = {
        "item": "status",
        "verb": "add",
        "post_id": f"{PAGE_ID}_1000009",
        "sender_id": 9002,  # the older form of the author
        "sender_name": "Bob",
        "created_time": int(NOW.timestamp()),
        "message": "Where is my parcel?",
    }
    await send(comment("add"), visitor_post)
    assert sorted(await item_states(app)) == [("open", None), ("open", None)]

    await send(comment("edited", message="Is this in stock in size M?"))
    stored = {m.message.platform_id: m for m in await app[STORE].all_messages("acme-fb")}
    assert stored[COMMENT].message.text == "Is this in stock in size M?"
    assert stored[COMMENT].edited and stored[COMMENT].message.created_at == NOW
    # Stored under a pseudonym; the waiting item keeps the name for the queue page.
    bob = stored[f"{PAGE_ID}_1000009"]
    assert bob.message.author_name is not None and bob.message.author_name.startswith("p:")
    assert (await app[STORE].items_by_id([bob.id]))[bob.id].author_name == "Bob"

    await send({"item": "comment", "verb": "hide", "post_id": POST, "comment_id": COMMENT})
    assert ("dismissed", "hidden") in await item_states(app)
    await send({"item": "comment", "verb": "unhide", "post_id": POST, "comment_id": COMMENT})
    assert ("dismissed", "hidden") not in await item_states(app)

    # The page answers by webhook: from.id is the page.
    reply = comment(
        "add",
        at=NOW + timedelta(minutes=10),
        comment_id="1000001_1000003",
        parent_id=COMMENT,
        **{"from": {"id": PAGE_ID, "name": "Acme"}},
    )
    await send(reply)
    items = await app[STORE].items_between(NOW - timedelta(days=1), NOW + timedelta(days=1))
    answered = [i for i in items if i.state is ItemState.ANSWERED_IN_TIME]
    assert [i.response_seconds for i in answered] == [600.0]

    # remove has no created_time and no author: the visitor post becomes a tombstone.
    await send({"item": "status", "verb": "remove", "post_id": f"{PAGE_ID}_1000009"})
    assert ("dismissed", "deleted") in await item_states(app)
    await send({"item": "comment", "verb": "remove", "post_id": POST, "comment_id": COMMENT})
    stored = {m.message.platform_id: m for m in await app[STORE].all_messages("acme-fb")}
    assert stored[COMMENT].message.deleted and stored[f"{PAGE_ID}_1000009"].message.deleted
    assert len(stored) == 3  # tombstones are kept


async def test_deliveries_for_pages_we_do_not_watch_are_counted_and_ignored(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app, client = await start(graph, tmp_path, aiohttp_client)
    body = delivery(comment("add"), page="777")
    response = await client.post("/webhooks/facebook", data=body, headers=sign(body))
    assert response.status == 200
    assert await app[STORE].counts() == {"messages": 0, "items": 0}
    unknown = app[METRICS].webhook_deliveries.labels("facebook", "unknown_page")._value.get()
    assert unknown == 1
