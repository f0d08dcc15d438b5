"""Acceptance (issue 17): three instances on one real PostgreSQL against the fake Graph API.

Six pages on one token, a 6 s poll interval and a 2 s lease; new consumer comments warn and
breach in real time (30 s target, 24/7). One instance is killed (SIGKILL) in the middle of a
poll, and the one delivering alerts in the middle of a delivery; both come back. Then:

- every consumer comment is stored exactly once;
- every warning and breach reaches the counting receiver exactly once per item (a redelivery
  of the notification that was in flight at the kill carries the same webhook-id, so a
  receiver that drops replays, as Standard Webhooks asks, sees it once; there is at most one);
- no page goes unpolled for more than two intervals, before, during and after the kills;
- the leases spread evenly (2, 2, 2) again once the killed instances are back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import text

from monitor.simulator.graph_api import FakeGraphApi
from monitor.store import create_engine, upgrade
from tests.e2e.test_alerts import receiver_block
from tests.e2e.test_restart import free_port

TOKEN = "EAAG-cluster-agency-token"
PAGES = [str(520_000_000 + n) for n in range(6)]
INTERVAL = 6.0
LEASE = 2.0
CONSUMER = ("8101", "Carla")
# Scheduling slack on a loaded 2-core runner on top of "two intervals" (jitter included).
SLACK = 1.5

pytestmark = pytest.mark.timeout(300)


class CountingReceiver:
    """A webhook receiver that counts every delivery by its webhook-id, slowly (1 s)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        try:
            body = await request.json()
            await asyncio.sleep(1.0)  # slow enough to be killed mid-delivery
            self.deliveries.append((request.headers["webhook-id"], body))
            return web.Response(text="ok")
        finally:
            self.in_flight -= 1

    def alerted(self) -> dict[tuple[int, str], set[str]]:
        """(item id, kind) -> the webhook-ids that carried it."""
        found: dict[tuple[int, str], set[str]] = {}
        for webhook_id, body in self.deliveries:
            for item in body["items"]:
                found.setdefault((item["id"], body["kind"]), set()).add(webhook_id)
        return found


class PollWatch:
    """When each page was last read at the fake, sampled every 0.1 s; the longest gaps."""

    def __init__(self, graph: FakeGraphApi) -> None:
        self.graph = graph
        self.seen = 0
        self.last: dict[str, float] = {}
        self.longest: dict[str, float] = {}

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            for call in self.graph.calls[self.seen :]:
                for page in PAGES:
                    if page in call.path:
                        self.longest[page] = max(
                            self.longest.get(page, 0.0), now - self.last.get(page, now)
                        )
                        self.last[page] = now
            self.seen = len(self.graph.calls)
            await asyncio.sleep(0.1)

    def gaps_now(self) -> dict[str, float]:
        """Including the time since the latest read (a page not read at all shows here)."""
        now = time.monotonic()
        return {p: max(self.longest.get(p, 0.0), now - self.last.get(p, now)) for p in PAGES}


def write_config(path: Path, *, graph_url: str, database_url: str, receiver_url: str) -> Path:
    sources = "".join(
        f"""
[[sources]]
type = "facebook_page"
name = "page-{n}"
brand = "acme"
page_id = "{page}"
access_token = "{TOKEN}"
api_base_url = "{graph_url}"
poll_interval = "{INTERVAL}s"
request_timeout = "5s"
calendar = "always"
"""
        for n, page in enumerate(PAGES)
    )
    path.write_text(
        f"""
database_url = "{database_url}"
[cluster]
lease_seconds = "{LEASE}s"
[log]
format = "json"
[policies.default]
office_hours = "30s"
after_hours = "30s"
coverage = "always"
[roster]
timezone = "Europe/Amsterdam"
[[roster.shifts]]
when = "mon-sun 00:00-12:00"
student = "sam"
[[roster.shifts]]
when = "mon-sun 12:00-00:00"
student = "sam"
{receiver_block("ops", receiver_url, timeout="10s")}
{sources}
""",
        encoding="utf-8",
    )
    return path


class Cluster:
    """Three `webcare-monitor run` processes on one config, each with its name and port."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.ports: dict[str, int] = {}

    async def start(self, name: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.ports[name] = free_port()
        self.processes[name] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "run",
            "-c",
            str(self.config),
            "--instance",
            name,
            "--port",
            str(self.ports[name]),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        await process.wait()

    async def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
        self.processes.clear()

    async def metrics(self) -> dict[str, list[Sample]]:
        """Each running instance's /metrics samples."""
        found = {}
        async with aiohttp.ClientSession() as session:
            for name in self.processes:
                url = f"http://127.0.0.1:{self.ports[name]}/metrics"
                async with session.get(url) as response:
                    families = text_string_to_metric_families(await response.text())
                    found[name] = [s for f in families for s in f.samples]
        return found

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(self.logs.glob("*.log"))
        )


async def until(condition: Callable[[], Any], what: str, seconds: float, cluster: Cluster) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"never happened: {what}\n{cluster.tail()}")


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    api = FakeGraphApi(access_token=TOKEN)
    for n, page in enumerate(PAGES):
        api.add_page(page, f"Acme {n}")
    await api.start()
    yield api
    await api.stop()


async def test_three_instances_survive_kills_without_a_lost_or_doubled_alert(
    graph: FakeGraphApi, postgres_database_url: str, tmp_path: Path
) -> None:
    receiver = CountingReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    now = datetime.now(UTC)
    posts = {
        p: graph.add_post(created_time=now - timedelta(days=1), message="deal", page_id=p)
        for p in PAGES
    }
    config = write_config(
        tmp_path / "config.toml",
        graph_url=graph.base_url,
        database_url=postgres_database_url,
        receiver_url=f"http://127.0.0.1:{port}/hook",
    )
    engine = create_engine(postgres_database_url)
    await upgrade(engine)  # so the test can read the leases from the first moment
    cluster = Cluster(config, tmp_path)
    watch = PollWatch(graph)
    watcher = asyncio.create_task(watch.run())

    async def holders() -> dict[str, str]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT key, holder FROM cluster_leases WHERE expires_at > now()")
            )
            return {row.key: row.holder for row in rows if row.holder}

    async def spread() -> dict[str, int] | None:
        held = await holders()
        counts: dict[str, int] = {}
        for key, holder in held.items():
            if key.startswith("source:"):
                counts[holder] = counts.get(holder, 0) + 1
        return counts if sorted(counts.values()) == [2, 2, 2] else None

    def comment(page: str, message: str) -> str:
        return graph.add_comment(
            post_id=posts[page], created_time=datetime.now(UTC), message=message, author=CONSUMER
        )

    try:
        for name in ("a", "b", "c"):
            await cluster.start(name)
        await until(spread, "three instances holding two pages each", 40, cluster)
        await until(lambda: all(p in watch.last for p in PAGES), "every page polled", 30, cluster)
        watch.longest.clear()  # gaps count from here: the start is not a takeover

        # Two comments per page: one answered by the page at once, one left to breach.
        left: dict[str, str] = {}
        for page in PAGES:
            answered = comment(page, "Is the shop open on Sunday?")
            graph.add_comment(
                post_id=posts[page],
                created_time=datetime.now(UTC),
                message="Yes, 10-17!",
                parent_id=answered,
            )
            left[page] = comment(page, "My order never arrived")

        # Kill the holder of page 0 while its poll is under way (the fake answers it slowly).
        victim = (await holders())["source:page-0"]
        graph.delay_path(PAGES[0], 2.0)
        reads = sum(PAGES[0] in c.path for c in graph.calls)
        await until(
            lambda: sum(PAGES[0] in c.path for c in graph.calls) > reads,
            "a poll of page 0 under way",
            20,
            cluster,
        )
        await cluster.kill(victim)
        graph.delay_path(PAGES[0], 0)

        # Kill the instance delivering alerts while a delivery is in flight (warnings come
        # at 22.5 s, breaches at 30 s).
        await until(lambda: receiver.in_flight > 0, "a delivery in flight", 60, cluster)
        courier = (await holders())["receiver:ops"]
        if courier in cluster.processes:
            await cluster.kill(courier)
        for name in ("a", "b", "c"):
            if name not in cluster.processes:
                await cluster.start(name)

        expected = {(None, kind, page) for page in PAGES for kind in ("warning", "breach")}

        def alerted_kinds() -> set[tuple[None, str, str]]:
            found = set()
            for _, body in receiver.deliveries:
                if body["kind"] in ("warning", "breach"):
                    page = PAGES[int(body["source"].removeprefix("page-"))]
                    found.add((None, body["kind"], page))
            return found

        await until(lambda: alerted_kinds() >= expected, "every warning and breach", 90, cluster)
        await until(spread, "the leases spread 2-2-2 again", 30, cluster)
        gaps = watch.gaps_now()
        await asyncio.sleep(1.5)  # every instance has seen the last round (cached renders too)
        scraped = await cluster.metrics()
    finally:
        watcher.cancel()
        await cluster.stop_all()
        await runner.cleanup()

    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT platform_id, count(*) FROM messages WHERE NOT is_brand"
                    " GROUP BY platform_id"
                )
            )
        ).all()
        items = (await conn.execute(text("SELECT count(*) FROM items"))).scalar_one()
        pending = (
            await conn.execute(text("SELECT count(*) FROM alert_outbox WHERE state = 'pending'"))
        ).scalar_one()
    await engine.dispose()

    # Every consumer comment stored once (two per page), each one item.
    assert len(stored) == 2 * len(PAGES) and all(count == 1 for _, count in stored)
    assert items == 2 * len(PAGES)
    # Every left comment warned and breached exactly once, by distinct webhook-id; the answered
    # ones never.
    alerted = receiver.alerted()
    for (item_id, kind), ids in alerted.items():
        assert len(ids) == 1, (item_id, kind, ids)
    kinds = sorted(kind for (_, kind) in alerted if kind in ("warning", "breach"))
    assert kinds == ["breach"] * len(PAGES) + ["warning"] * len(PAGES)
    redelivered = len(receiver.deliveries) - len({w for w, _ in receiver.deliveries})
    assert redelivered <= 1, [(w[:8], b["kind"], b["source"]) for w, b in receiver.deliveries]
    assert pending == 0
    # Metrics add up: each page's series come from exactly one instance, the one holding it.
    held = {
        name: [s.value for s in samples if s.name == "webcare_instance_sources"]
        for name, samples in scraped.items()
    }
    assert held == {"a": [2.0], "b": [2.0], "c": [2.0]}
    exporters = {
        page: [
            name
            for name, samples in scraped.items()
            for s in samples
            if s.name == "webcare_source_up" and s.labels["source"] == page
        ]
        for page in (f"page-{n}" for n in range(len(PAGES)))
    }
    assert all(len(names) == 1 for names in exporters.values()), exporters
    # No page went unpolled for more than two intervals, kills included.
    assert max(gaps.values()) <= 2 * INTERVAL + SLACK, gaps
