"""Messenger on /webhooks/facebook: signed message events open, answer and dismiss items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import METRICS, STORE
from tests.e2e.conftest import PAGE_ID, TOKEN, write_config
from tests.e2e.test_facebook_webhook import SECRET, VERIFY, sign

NOW = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
ANN = ("24000000000001", "Ann")


async def start(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any) -> tuple[Any, Any]:
    extra = f"""
[[sources]]
type = "messenger"
name = "acme-messenger"
brand = "acme"
page_id = "{PAGE_ID}"
access_token = "{TOKEN}"
api_base_url = "{graph.base_url}"
[facebook_webhook]
app_secret = "{SECRET}"
verify_token = "{VERIFY}"
"""
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        extra=extra,
    )
    app = create_app(
        load_config(path), clock=FakeClock(NOW + timedelta(minutes=5)), start_polling=False
    )
    return app, await aiohttp_client(app)


async def post(client: Any, payload: dict[str, Any], *, signed: bool = True) -> int:
    body = orjson.dumps(payload)
    headers = sign(body) if signed else {"Content-Type": "application/json"}
    response = await client.post("/webhooks/facebook", data=body, headers=headers)
    return int(response.status)


async def test_messages_by_webhook_open_and_answer_items_of_the_messenger_source(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app, client = await start(graph, tmp_path, aiohttp_client)
    ann = graph.add_conversation(ANN)
    question = graph.add_message(ann, created_time=NOW, message="Order 42?", from_page=False)
    payload = graph.messaging_delivery(question)
    assert await post(client, payload, signed=False) == 403
    for _ in range(2):  # redelivered: stored once
        assert await post(client, payload) == 200
    store = app[STORE]
    [item] = await store.items_between(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert (item.source, item.thread_id, item.state.value) == ("acme-messenger", ANN[0], "open")
    [stored] = await store.all_messages("acme-messenger")
    assert stored.message.text == ""  # store_text is off for Messenger by default
    assert await store.all_messages("acme-fb") == []

    reply = graph.add_message(
        ann, created_time=NOW + timedelta(minutes=12), message="Shipped!", from_page=True
    )
    assert await post(client, graph.messaging_delivery(reply)) == 200
    [item] = await store.items_between(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert item.state.value == "answered_in_time"
    assert item.response_seconds == 12 * 60
    accepted = app[METRICS].webhook_deliveries.labels("facebook", "accepted")._value.get()
    unknown = app[METRICS].webhook_deliveries.labels("facebook", "unknown_page")._value.get()
    assert (accepted, unknown) == (3, 0)


async def test_an_unsent_message_dismisses_its_item(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app, client = await start(graph, tmp_path, aiohttp_client)
    ann = graph.add_conversation(ANN)
    oops = graph.add_message(ann, created_time=NOW, message="wrong chat", from_page=False)
    assert await post(client, graph.messaging_delivery(oops)) == 200
    assert await post(client, graph.messaging_delivery(oops, deleted=True)) == 200
    [item] = await app[STORE].items_between(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert (item.state.value, item.dismissed_reason) == ("dismissed", "deleted")


async def test_messenger_figures_are_exported_per_messenger_source(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    _, client = await start(graph, tmp_path, aiohttp_client)
    text = await (await client.get("/metrics")).text()
    labels = '{brand="acme",source="acme-messenger"}'
    assert f"webcare_messaging_window_closing_seconds{labels} +Inf" in text
    assert f"webcare_meta_very_responsive{labels} 0.0" in text
    assert 'webcare_meta_very_responsive{brand="acme",source="acme-fb"}' not in text
