"""transport.send for `apprise` receivers: Apprise's True/False mapped to the retry policy.

Real Apprise, real HTTP on loopback (json:// URLs). A failure has no status: retryable until
max_age. A receiver with several URLs retries only those that did not accept yet. Errors name
the URL by position and scheme, never its password or token.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from monitor.alerts.models import Duty, Notification
from monitor.alerts.transport import send
from monitor.config.alerts import ReceiverConfig

NOW = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
PASSWORD = "Hook-pw-31d7e2"


def notification(number: int = 1) -> Notification:
    return Notification(
        id=f"breach:{number}",
        kind="breach",
        brand="acme",
        source="acme-fb",
        platform="facebook_page",
        created_at=NOW,
        items=(),
        duty=Duty(student="nina"),
    )


def receiver(*urls: str, timeout: float = 5.0) -> ReceiverConfig:
    return ReceiverConfig(
        name="phones",
        type="apprise",
        urls=[SecretStr(u) for u in urls],
        timeout=timeout,
    )


class Endpoint:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.down: set[str] = set()
        self.hang = False

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        if self.hang:
            await asyncio.sleep(30)
        return web.Response(status=503 if name in self.down else 200)


async def serve(aiohttp_server: Any, endpoint: Endpoint) -> int:
    app = web.Application()
    app.router.add_post("/{name}", endpoint.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    port: int = server.port
    return port


async def attempt(r: ReceiverConfig, n: Notification) -> Any:
    return await send(r, n, delivery_id=f"{n.id}.phones", session=None, now=NOW)  # type: ignore[arg-type]


async def test_a_failing_url_is_retried_alone_until_it_accepts(aiohttp_server: Any) -> None:
    endpoint = Endpoint()
    port = await serve(aiohttp_server, endpoint)
    endpoint.down.add("down")
    r = receiver(
        f"json://u:{PASSWORD}@127.0.0.1:{port}/fine",
        f"json://u:{PASSWORD}@127.0.0.1:{port}/down",
    )
    n = notification()
    first = await attempt(r, n)
    assert not first.ok and first.retryable and not first.permanent
    assert first.status is None
    assert first.error.startswith("receiver 'phones' (apprise): URL 2 of 2 (json): ")
    assert "503" in first.error or "Unavailable" in first.error, first.error
    assert PASSWORD not in first.error and str(port) not in first.error.split("):", 1)[0]
    second = await attempt(r, n)
    assert not second.ok and second.retryable
    assert endpoint.hits == {"fine": 1, "down": 2}  # the one that accepted is not sent again
    endpoint.down.clear()
    third = await attempt(r, n)
    assert third.ok
    assert endpoint.hits == {"fine": 1, "down": 3}
    # Another notification goes to both again.
    assert (await attempt(r, notification(2))).ok
    assert endpoint.hits == {"fine": 2, "down": 4}


async def test_a_service_that_is_not_listening_is_retryable() -> None:
    r = receiver(f"json://u:{PASSWORD}@127.0.0.1:9/nothing-listens-here-0123456789")
    result = await attempt(r, notification())
    assert not result.ok and result.retryable and not result.permanent
    assert "URL 1 of 1 (json)" in result.error
    assert PASSWORD not in result.error
    assert "nothing-listens-here-0123456789" not in result.error


async def test_a_hanging_service_times_out_within_the_receivers_timeout(
    aiohttp_server: Any,
) -> None:
    endpoint = Endpoint()
    endpoint.hang = True
    port = await serve(aiohttp_server, endpoint)
    r = receiver(f"json://127.0.0.1:{port}/slow", timeout=1.0)
    started = time.monotonic()
    result = await attempt(r, notification())
    took = time.monotonic() - started
    assert not result.ok and result.retryable
    assert took < 4, took
    assert endpoint.hits == {"slow": 1}
