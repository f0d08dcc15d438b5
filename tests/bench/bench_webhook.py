"""Webhook to metric: how long from a Facebook delivery until `/metrics` counts the comment?

Run: .venv/bin/python -m tests.bench.bench_webhook [N]
Starts the real service (create_app, SQLite, polling off so only webhooks feed it) on a loopback
port, sends N signed `feed` deliveries one after another, and for each measures
(1) the POST round trip (the handler stores the comment before it answers 200) and
(2) the time until a scrape of /metrics shows webcare_items_total one higher.
Goal from issue 5: well under 2 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import create_app
from monitor.config import load_config
from tests.e2e.test_restart import free_port

SECRET = "bench-secret"
PAGE = "4242"
CONFIG = """
database_url = "sqlite+aiosqlite:///{db}"
[http]
port = {port}
[[sources]]
type = "facebook_page"
name = "bench"
brand = "bench"
page_id = "{page}"
access_token = "bench-token"
api_base_url = "http://127.0.0.1:9/v26.0"
[facebook_webhook]
app_secret = "{secret}"
verify_token = "v"
"""


def delivery(n: int) -> bytes:
    value = {
        "item": "comment",
        "verb": "add",
        "post_id": f"{PAGE}_1",
        "comment_id": f"1_{n + 10}",
        "parent_id": f"{PAGE}_1",
        "from": {"id": "77", "name": "Consumer"},
        "created_time": int(datetime.now(UTC).timestamp()),
        "message": f"question {n}",
    }
    entry = {"id": PAGE, "time": 0, "changes": [{"field": "feed", "value": value}]}
    return orjson.dumps({"object": "page", "entry": [entry]})


async def items_total(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "webcare_items_total"
    )


async def main(n: int) -> None:
    """Run the measurement and print a summary."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_text(CONFIG.format(db=Path(tmp) / "b.db", port=port, page=PAGE, secret=SECRET))
        app = create_app(load_config(path), start_polling=False)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        round_trips: list[float] = []
        to_metrics: list[float] = []
        async with aiohttp.ClientSession() as session:
            for i in range(n):
                body = delivery(i)
                signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                started = time.perf_counter()
                async with session.post(
                    f"{base}/webhooks/facebook",
                    data=body,
                    headers={"X-Hub-Signature-256": f"sha256={signature}"},
                ) as response:
                    assert response.status == 200, await response.text()
                round_trips.append(time.perf_counter() - started)
                while await items_total(session, base) < i + 1:  # noqa: ASYNC110 - polling HTTP
                    await asyncio.sleep(0.001)
                to_metrics.append(time.perf_counter() - started)
        await runner.cleanup()
    print(f"webhook delivery -> store -> /metrics, {n} deliveries (SQLite, loopback):")
    for label, values in (("POST answered", round_trips), ("seen in /metrics", to_metrics)):
        values.sort()
        p99 = values[max(0, -(-len(values) * 99 // 100) - 1)]
        print(
            f"  {label:17} median {statistics.median(values) * 1000:6.1f} ms"
            f"  p99 {p99 * 1000:6.1f} ms  max {values[-1] * 1000:6.1f} ms  (goal: < 2000 ms)"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
