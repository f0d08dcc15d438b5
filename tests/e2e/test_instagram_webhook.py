"""Instagram webhooks: signed `comments` deliveries re-read their media; the Page's still work."""

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
from tests.e2e.conftest import TOKEN, write_config
from tests.e2e.test_facebook_webhook import comment, delivery

SECRET = "app-secret-for-tests-31337"
IG_ID = "17841400000000001"
NOW = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
ANN = ("9001", "ann.consumer")


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


async def start(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any) -> tuple[Any, Any]:
    graph.add_ig_account(IG_ID, "acme.nl")
    instagram = f"""
[[sources]]
type = "instagram"
name = "acme-ig"
brand = "acme"
ig_user_id = "{IG_ID}"
username = "acme.nl"
access_token = "{TOKEN}"
api_base_url = "{graph.base_url}"
request_timeout = "2s"
[facebook_webhook]
app_secret = "{SECRET}"
verify_token = "verify-me"
"""
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/w.db",
    )
    path.write_text(path.read_text() + instagram)
    app = create_app(
        load_config(path), clock=FakeClock(NOW + timedelta(minutes=1)), start_polling=False
    )
    return app, await aiohttp_client(app)


async def items(app: Any) -> list[Any]:
    return await app[STORE].items_between(NOW - timedelta(days=1), NOW + timedelta(days=1))


async def post(client: Any, document: dict[str, Any] | bytes, secret: str = SECRET) -> int:
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    response = await client.post("/webhooks/facebook", data=body, headers=sign(body, secret))
    return int(response.status)


async def test_a_signed_comment_is_read_at_once_and_the_accounts_reply_answers_it(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app, client = await start(graph, tmp_path, aiohttp_client)
    media = graph.add_media(IG_ID, created_time=NOW - timedelta(hours=1), caption="Sale")
    question = graph.add_ig_comment(media, created_time=NOW, text="Size M?", author=ANN)
    for _ in range(2):  # Meta redelivers: stored once
        assert await post(client, graph.comment_delivery(question)) == 200
    assert app[COORDINATOR].sources["acme-ig"].polls == 0
    [item] = await items(app)
    assert (item.state, item.thread_id, item.author_name) == (ItemState.OPEN, media, ANN[1])
    assert item.created_at == NOW  # the platform's time, from the re-read

    reply = graph.add_ig_comment(
        media, created_time=NOW + timedelta(minutes=7), text="Yes!", parent_id=question
    )
    assert await post(client, graph.comment_delivery(reply)) == 200
    [item] = await items(app)
    assert (item.state, item.response_seconds) == (ItemState.ANSWERED_IN_TIME, 420.0)
    accepted = app[METRICS].webhook_deliveries.labels("facebook", "accepted")._value.get()
    assert accepted == 3


async def test_a_deleted_comment_is_dismissed_when_its_media_is_re_read(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app, client = await start(graph, tmp_path, aiohttp_client)
    media = graph.add_media(IG_ID, created_time=NOW - timedelta(hours=1), caption="Sale")
    spam = graph.add_ig_comment(media, created_time=NOW, text="spam", author=ANN)
    other = graph.add_ig_comment(media, created_time=NOW, text="Price?", author=ANN)
    assert await post(client, graph.comment_delivery(spam, other)) == 200
    graph.delete_ig(spam)
    assert await post(client, graph.comment_delivery(other)) == 200
    states = sorted((i.state.value, i.dismissed_reason) for i in await items(app))
    assert states == [("dismissed", "deleted"), ("open", None)]


async def test_unsigned_unknown_and_page_deliveries(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app, client = await start(graph, tmp_path, aiohttp_client)
    media = graph.add_media(IG_ID, created_time=NOW - timedelta(hours=1), caption="Sale")
    question = graph.add_ig_comment(media, created_time=NOW, text="Hi", author=ANN)
    document = graph.comment_delivery(question)
    assert await post(client, document, secret="not-it") == 403
    assert await app[STORE].counts() == {"messages": 0, "items": 0}

    stranger = {**document, "entry": [{**document["entry"][0], "id": "17841400000000999"}]}
    assert await post(client, stranger) == 200
    unknown = app[METRICS].webhook_deliveries.labels("facebook", "unknown_page")._value.get()
    assert unknown == 1
    garbage = {"object": "instagram", "entry": [{"id": "not an id", "changes": []}]}
    assert await post(client, garbage) == 400
    mention = graph.mention_delivery(IG_ID, media, question)
    assert await post(client, mention) == 200  # accepted, nothing to re-read

    # The Page's own `feed` deliveries on the same endpoint keep working.
    assert await post(client, delivery(comment("add", at=NOW))) == 200
    assert await app[STORE].counts() == {"messages": 1, "items": 1}
