"""/metrics at 1,000 sources: render time and response size, before and after issue 15 part 3.

Run: .venv/bin/python -m tests.bench.bench_metrics [--sources N] [--rounds K]

The registry is the service's own (`Metrics`, `OpenItems`, `RollingCompliance`), filled as a
busy deployment would fill it: N sources (20 per brand, three platforms), every series
`prepare` creates, counters with counts, both response-time histograms with the buckets we
use (the defaults plus 15 min, 30 min, 1 h and 4 h targets) and observations, 3 moderators per
source, open items in every state, compliance in every window, 5 alert receivers.

- before: what the service did until now, `generate_latest(registry)` on every request, with
  prometheus_client's `_created` series;
- after: `MetricsExposition` as /metrics serves it, no `_created`, OpenMetrics (Prometheus'
  Accept header) gzipped: one render (in a worker thread) and then cached answers for 1 s.

Also a real aiohttp server on loopback: 10 scrapers at once, each scraping 4 times a second
for 3 seconds, counting renders. Prints figures and ratios; asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import aiohttp
from aiohttp import web
from prometheus_client import enable_created_metrics, generate_latest
from prometheus_client.metrics import disable_created_metrics

from monitor.domain import Item, ItemState, Period, SourceRef
from monitor.metrics import Metrics, OpenItems
from monitor.metrics.compliance import RollingCompliance
from monitor.store import Store
from monitor.web.exposition import EXPOSITION, MetricsExposition
from monitor.web.health import metrics as metrics_handler
from monitor.web.keys import METRICS
from monitor.words import counted
from tests.e2e.test_restart import free_port

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TARGETS = (900.0, 1800.0, 3600.0, 14400.0)
PLATFORMS = ("facebook_page", "discourse", "phpbb_atom")
NOW = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)


class _Counts:
    """Stands in for the store's compliance query."""

    def __init__(self, refs: list[SourceRef], rng: random.Random) -> None:
        self._refs = refs
        self._rng = rng

    async def compliance_counts(
        self, since: datetime, until: datetime
    ) -> dict[tuple[str, str], tuple[int, int, int]]:
        r = self._rng
        return {
            (ref.name, period.value): (r.randint(1, 90), r.randint(0, 9), r.randint(0, 3))
            for ref in self._refs
            for period in Period
        }


def busy_registry(sources: int, seed: int = 15) -> Metrics:
    """The service's registry as a busy deployment of `sources` sources fills it."""
    rng = random.Random(seed)
    metrics = Metrics(version="0.1.0", targets=TARGETS)
    refs = [
        SourceRef(
            name=f"brand{i // 20:03d}-src{i:04d}",
            brand=f"brand{i // 20:03d}",
            platform=PLATFORMS[i % 3],
        )
        for i in range(sources)
    ]
    for ref in refs:
        metrics.prepare(ref)
        for period in Period:
            labels = (ref.brand, ref.name, period.value)
            metrics.items.labels(*labels).inc(rng.randint(50, 5000))
            metrics.breaches.labels(*labels).inc(rng.randint(0, 40))
            for outcome in ("in_time", "late"):
                metrics.responses.labels(*labels, outcome).inc(rng.randint(0, 3000))
            for _ in range(20):
                metrics.first_response.labels(*labels).observe(rng.expovariate(1 / 1800))
                metrics.first_response_sla.labels(*labels).observe(rng.expovariate(1 / 1200))
        for k in range(3):
            metrics.moderator_responses.labels(ref.brand, ref.name, f"Student {k}").inc(
                rng.randint(1, 500)
            )
        for _ in range(10):
            metrics.detection_lag.labels(ref.brand, ref.name).observe(rng.expovariate(1 / 60))
            metrics.poll_duration.labels(ref.brand, ref.name).observe(rng.expovariate(1 / 0.4))
        metrics.source_up.labels(ref.brand, ref.name, ref.platform).set(1)
        metrics.last_success.labels(ref.brand, ref.name).set(NOW.timestamp())
        metrics.api_usage.labels(ref.brand, ref.name).set(rng.random() / 2)
        if ref.platform == "facebook_page":
            metrics.token_expiry.labels(ref.brand, ref.name, "data_access").set(
                NOW.timestamp() + 8e6
            )
    for n in range(5):
        metrics.prepare_receiver(f"receiver-{n}")
    open_items = OpenItems(refs, now=lambda: NOW)
    states = (ItemState.OPEN, ItemState.WARNING, ItemState.BREACHED)
    open_items.load(
        Item(
            message_id=m,
            source=ref.name,
            brand=ref.brand,
            thread_id=str(m),
            created_at=NOW - timedelta(minutes=rng.randint(1, 600)),
            period=rng.choice(list(Period)),
            weekend=False,
            state=rng.choice(states),
            target_seconds=1800,
            warning_at=NOW,
            due_at=NOW,
        )
        for m, ref in enumerate(ref for ref in refs for _ in range(rng.randint(0, 4)))
    )
    compliance = RollingCompliance(refs)
    asyncio.run(compliance.refresh(cast(Store, _Counts(refs, rng)), NOW))
    metrics.registry.register(open_items)
    metrics.registry.register(compliance)
    return metrics


def timed(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """Median seconds of `rounds` calls, and the last result."""
    times = []
    result = None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def served(metrics: Metrics, scrapers: int, interval: float, seconds: float) -> None:
    """A real server; `scrapers` clients each scraping every `interval` seconds, on a fixed
    schedule as Prometheus does (a scrape starts at its time however long the last took)."""
    app = web.Application()
    app[METRICS] = metrics
    app[EXPOSITION] = exposition = MetricsExposition(metrics.registry)
    app.router.add_get("/metrics", metrics_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    latencies: list[float] = []
    sizes: set[int] = set()
    loop_lag: list[float] = []
    headers = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
    stop = time.monotonic() + seconds

    async def scraper(session: aiohttp.ClientSession) -> None:
        due = time.monotonic()
        while due < stop:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due += interval
            started = time.perf_counter()
            async with session.get(
                f"http://127.0.0.1:{port}/metrics", headers=headers, auto_decompress=False
            ) as response:
                body = await response.read()
            latencies.append(time.perf_counter() - started)
            sizes.add(len(body))

    async def heartbeat() -> None:
        # How long the event loop is kept from other work (a 1 ms tick, lateness measured).
        while time.monotonic() < stop:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            loop_lag.append(time.perf_counter() - started - 0.001)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(heartbeat(), *(scraper(session) for _ in range(scrapers)))
    await exposition.close()
    await runner.cleanup()
    in_order = " ".join(f"{x * 1000:.0f}" for x in latencies[:12])
    latencies.sort()
    print(
        f"served over HTTP: {counted(scrapers, 'scraper')} every {interval:g} s"
        f" for {seconds:.0f} s:"
        f" {len(latencies)} scrapes, {exposition.renders} renders,"
        f" {exposition.compressions} compressions;"
        f" latency median {statistics.median(latencies) * 1000:.1f} ms,"
        f" p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms,"
        f" max {latencies[-1] * 1000:.1f} ms; event-loop stall max {max(loop_lag) * 1000:.1f} ms"
    )
    print(f"  first scrapes, in order (ms): {in_order}")


async def after(registry: Any, rounds: int) -> tuple[float, float, bytes]:
    """Median time of a fresh rendering (OpenMetrics + gzip) and of a cached answer."""
    misses, hits = [], []
    body = b""
    for _ in range(rounds):
        exposition = MetricsExposition(registry)
        started = time.perf_counter()
        body = (await exposition.render(PROMETHEUS_ACCEPT, "gzip")).body
        misses.append(time.perf_counter() - started)
        started = time.perf_counter()
        await exposition.render(PROMETHEUS_ACCEPT, "gzip")
        hits.append(time.perf_counter() - started)
        assert exposition.renders == 1
    return statistics.median(misses), statistics.median(hits), body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    metrics = busy_registry(args.sources)
    registry = metrics.registry

    enable_created_metrics()  # type: ignore[no-untyped-call]
    before_s, before_body = timed(lambda: generate_latest(registry), args.rounds)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    series = sum(1 for line in before_body.splitlines() if not line.startswith(b"#"))
    created = sum(1 for line in before_body.splitlines() if b"_created{" in line)

    text_s, text_body = timed(lambda: generate_latest(registry), args.rounds)
    miss_s, hit_s, gz_body = asyncio.run(after(registry, args.rounds))
    om_body = gzip.decompress(gz_body)
    level9_s, level9 = timed(lambda: gzip.compress(om_body, 9), args.rounds)

    kib = 1024
    print(f"{args.sources} sources, {series} samples before ({created} of them _created)")
    print(
        f"before: generate_latest with _created: {before_s * 1000:.1f} ms per request,"
        f" {len(before_body) / kib:.0f} KiB"
    )
    print(
        f"after:  text format, no _created:      {text_s * 1000:.1f} ms,"
        f" {len(text_body) / kib:.0f} KiB"
    )
    print(
        f"after:  OpenMetrics + gzip (level 1), a fresh render: {miss_s * 1000:.1f} ms,"
        f" {len(om_body) / kib:.0f} KiB -> {len(gz_body) / kib:.0f} KiB"
        f" (gzip level 9 would take {level9_s * 1000:.1f} ms more for {len(level9) / kib:.0f} KiB)"
    )
    print(f"after:  cached answer (within 1 s of the render): {hit_s * 1000:.2f} ms")
    print(
        f"ratios: bytes on the wire {len(before_body) / len(gz_body):.1f}x fewer;"
        f" render {before_s / miss_s:.2f}x faster; served from cache"
        f" {before_s / hit_s:.0f}x faster than rendering each request"
    )
    asyncio.run(served(metrics, scrapers=10, interval=0.25, seconds=3))
    # Prometheus at a steady interval: after two scrapes each rendering is made just ahead of
    # the next scrape, which is then served from it at once.
    asyncio.run(served(metrics, scrapers=1, interval=5.0, seconds=40))


if __name__ == "__main__":
    main()
