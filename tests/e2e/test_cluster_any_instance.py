"""Issue 17: a webhook delivery or a dismissal that reaches the instance NOT polling the page
is carried out by the one that does (two instances in one process, a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.app import create_app
from monitor.config import ClusterConfig, load_config
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import CLUSTER, COORDINATOR, STORE
from tests.e2e.conftest import write_config
from tests.e2e.test_facebook_to_metrics import samples
from tests.e2e.test_facebook_webhook import SECRET, VERIFY, delivery, sign

TOKEN = "cluster-api-token-3f9a"
ANN = ("9001", "Ann")


async def eventually(condition: Callable[[], Any], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


async def test_webhooks_and_dismissals_reach_the_instance_holding_the_page(
    graph: FakeGraphApi, postgres_database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    now = datetime.now(UTC)
    post = graph.add_post(created_time=now - timedelta(days=1), message="New in store")
    graph.add_comment(post_id=post, created_time=now, message="Price?", author=ANN)
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=postgres_database_url,
        poll_interval="300s",  # one poll at start; afterwards only webhooks bring news
        extra=f"""
[facebook_webhook]
app_secret = "{SECRET}"
verify_token = "{VERIFY}"
[[http.api_tokens]]
token = "{TOKEN}"
name = "lead-lisa"
""",
    )
    config = load_config(path)
    # Two names: by name order the page's lease falls to "x"; "y" holds nothing.
    holder = create_app(config.model_copy(update={"cluster": ClusterConfig(instance="x")}))
    x = await aiohttp_client(holder)
    other = create_app(config.model_copy(update={"cluster": ClusterConfig(instance="y")}))
    y = await aiohttp_client(other)
    await eventually(lambda: holder[CLUSTER].holds_source("acme-fb"), "x holds the page")
    await eventually(lambda: not other[CLUSTER].holds_source("acme-fb"), "y leaves the page to x")
    await eventually(lambda: holder[COORDINATOR].sources["acme-fb"].polls >= 1, "x polled")
    assert (await holder[STORE].counts())["items"] == 1

    # A comment Facebook announces to y: y leaves it to x, which reads the thread.
    late = graph.add_comment(
        post_id=post, created_time=datetime.now(UTC), message="Hello?", author=ANN
    )
    body = delivery(
        {
            "item": "comment",
            "verb": "add",
            "post_id": post,
            "comment_id": late,
            "parent_id": post,
            "from": {"id": ANN[0], "name": ANN[1]},
            "created_time": int(time.time()),
            "message": "Hello?",
        }
    )
    answer = await y.post("/webhooks/facebook", data=body, headers=sign(body))
    assert answer.status == 200
    await eventually(
        lambda: _items(holder, 2), "the holder stored the comment announced to the other"
    )
    assert other[COORDINATOR].sources["acme-fb"].polls == 0

    # A dismissal made on y: x's figures follow (x exports the page; y exports nothing of it).
    first = min(i.message_id for i in await holder[STORE].unanswered_items())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    done = await y.post(f"/api/v1/items/{first}/dismiss", json={"reason": "spam"}, headers=headers)
    assert done.status == 200

    async def dismissed_at_x() -> bool:
        scrape = samples(await (await x.get("/metrics")).text())
        return any(
            name == "webcare_items_dismissed_total" and ("reason", "spam") in labels and v == 1
            for (name, labels), v in scrape.items()
        )

    await eventually(dismissed_at_x, "x counted the dismissal made at y")
    at_y = samples(await (await y.get("/metrics")).text())
    assert not [key for key in at_y if ("source", "acme-fb") in key[1]]
    assert ("webcare_instance_sources", frozenset({("instance", "y")})) in at_y


async def _items(app: Any, count: int) -> bool:
    return bool((await app[STORE].counts())["items"] == count)
