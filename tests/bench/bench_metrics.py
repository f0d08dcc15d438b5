"""/metrics at 1,000 sources: render time and size, before and after issue 17 part 6.

Run: .venv/bin/python -m tests.bench.bench_metrics [--sources N] [--rounds K]

The registry is the service's own (`Metrics`, `OpenItems`, `RollingCompliance`), filled as a
busy deployment would fill it: N sources (20 per brand, three platforms), every series
`prepare` creates, counters with counts, response times observed (15 min, 30 min, 1 h and 4 h
targets), lags and poll durations, 3 moderators per source, open items in every state,
compliance in every window, 5 alert receivers.

- before: the instruments as they were before issue 17 part 6 (monitor/metrics/instruments.py
  at BEFORE_COMMIT, read with git: per-source histograms, zero series for every reason),
  rendered by prometheus_client's own encoders, as /metrics did until then;
- after: today's instruments and compliance counts, rendered by monitor.metrics.render (the
  encoder /metrics uses). "cold": the first render, nothing cached; "warm": the next render
  after 1 s of a busy deployment's changes (CHANGED_SOURCES polls, ITEM_EVENTS items).

Sizes are the body uncompressed and gzipped at level 1 as /metrics sends it to Prometheus
(OpenMetrics). Also a real aiohttp server on loopback: 10 scrapers at once, each scraping 4
times a second for 3 seconds, counting renders. Prints figures and ratios; asserts nothing
about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import statistics
import subprocess
import time
import types
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp import web
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from monitor.domain import Item, ItemState, Period, SourceRef
from monitor.metrics import Metrics, OpenItems
from monitor.metrics.compliance import RollingCompliance
from monitor.metrics.render import encode
from monitor.store import Store
from monitor.web.exposition import EXPOSITION, GZIP_LEVEL, MetricsExposition
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
# The last commit before issue 17 part 6 (series per source, encoder).
BEFORE_COMMIT = "d36adae9f1afbab997fd8d73e0117f1b98ec45e0"
# A busy second: 1,000 sources polled once a minute end about 17 polls a second; items arrive.
CHANGED_SOURCES = 17
ITEM_EVENTS = 5


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


def refs_of(sources: int) -> list[SourceRef]:
    """N sources, 20 per brand, three platforms."""
    return [
        SourceRef(
            name=f"brand{i // 20:03d}-src{i:04d}",
            brand=f"brand{i // 20:03d}",
            platform=PLATFORMS[i % 3],
        )
        for i in range(sources)
    ]


def instruments_before() -> type[Any]:
    """The Metrics class as it was at BEFORE_COMMIT (git show), to measure against."""
    code = subprocess.run(
        ["git", "show", f"{BEFORE_COMMIT}:monitor/metrics/instruments.py"],
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("instruments_before")
    exec(compile(code, "instruments_before.py", "exec"), module.__dict__)
    return cast(type[Any], module.Metrics)


class RatioOnly(Collector):
    """RollingCompliance as it was: the ratio alone, through prometheus_client."""

    def __init__(self, compliance: RollingCompliance) -> None:
        self._compliance = compliance

    def collect(self) -> Iterator[Any]:
        yield next(iter(self._compliance.collect()))


class PlainCollector(Collector):
    """A collector as prometheus_client sees it (its collect(), not our fast text)."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def collect(self) -> Iterable[Any]:
        return self._collector.collect()


def busy_registry(sources: int, seed: int = 15, *, before: bool = False) -> Any:
    """The service's registry as a busy deployment of `sources` sources fills it."""
    rng = random.Random(seed)
    metrics = (instruments_before() if before else Metrics)(version="0.1.0", targets=TARGETS)
    refs = refs_of(sources)
    for ref in refs:
        metrics.prepare(ref)
        for period in Period:
            labels = (ref.brand, ref.name, period.value)
            # Before: per source; after: per brand.
            sla = labels if before else (ref.brand, period.value)
            metrics.items.labels(*labels).inc(rng.randint(50, 5000))
            metrics.breaches.labels(*labels).inc(rng.randint(0, 40))
            for outcome in ("in_time", "late"):
                metrics.responses.labels(*labels, outcome).inc(rng.randint(0, 3000))
            for _ in range(20):
                metrics.first_response.labels(*labels).observe(rng.expovariate(1 / 1800))
                metrics.first_response_sla.labels(*sla).observe(rng.expovariate(1 / 1200))
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
    if before:
        metrics.registry.register(PlainCollector(open_items))
        metrics.registry.register(RatioOnly(compliance))
    else:
        metrics.registry.register(open_items)
        metrics.registry.register(compliance)
    return metrics


def busy_second(metrics: Metrics, sources: int, rng: random.Random) -> None:
    """What changes in a second of a busy deployment: polls ending, items arriving."""
    refs = refs_of(sources)
    for ref in rng.sample(refs, min(CHANGED_SOURCES, len(refs))):
        metrics.poll_duration.labels(ref.brand, ref.name).observe(rng.expovariate(1 / 0.4))
        metrics.last_success.labels(ref.brand, ref.name).set(NOW.timestamp() + 1)
        metrics.api_usage.labels(ref.brand, ref.name).set(rng.random() / 2)
    for _ in range(ITEM_EVENTS):
        ref = rng.choice(refs)
        period = rng.choice(list(Period)).value
        metrics.items.labels(ref.brand, ref.name, period).inc()
        metrics.responses.labels(ref.brand, ref.name, period, "in_time").inc()
        metrics.first_response.labels(ref.brand, ref.name, period).observe(600)
        metrics.first_response_sla.labels(ref.brand, period).observe(600)
        metrics.detection_lag.labels(ref.brand, ref.name).observe(5)


# Per-source families a busy source has whatever we choose, under the labels docs/metrics.md
# documents: each period of the SLA counters, each period x state of the open items, each
# period x window of compliance and its counts (issue 17 part 3), and the poller's gauges.
REQUIRED = frozenset(
    {
        "webcare_items_total",
        "webcare_responses_total",
        "webcare_sla_breaches_total",
        "webcare_open_items",
        "webcare_oldest_open_item_age_seconds",
        "webcare_sla_compliance_ratio",
        "webcare_sla_judged",
        "webcare_sla_in_time",
        "webcare_source_up",
        "webcare_last_successful_poll_timestamp_seconds",
        "webcare_api_usage_ratio",
    }
)


def per_source_cost(body: bytes, sources: int) -> None:
    """Print series and bytes per source of each per-source family, and the required floor."""
    series: dict[str, int] = {}
    size: dict[str, int] = {}
    for line in body.decode().splitlines():
        if 'source="' in line and not line.startswith("#"):
            name = line.split("{", 1)[0]
            series[name] = series.get(name, 0) + 1
            size[name] = size.get(name, 0) + len(line) + 1
    print("per source, by family (* documented labels require it of a busy source):")
    for name in sorted(size, key=lambda n: -size[n]):
        mark = "*" if name in REQUIRED else " "
        each = f"{series[name] / sources:5.1f} series {size[name] / sources:6.0f} B"
        print(f"  {mark} {each}  {name}")
    floor = sum(size[n] for n in REQUIRED if n in size)
    floor_series = sum(series[n] for n in REQUIRED if n in series)
    print(
        f"required floor: {floor_series / sources:.1f} series, {floor / sources:.0f} B per source,"
        f" {floor / 1e6:.2f} MB at {sources} sources (all per-source series:"
        f" {sum(size.values()) / 1e6:.2f} MB; body {len(body) / 1e6:.2f} MB)"
    )


def samples_in(body: bytes) -> int:
    """Sample lines of an exposition."""
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


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


def fresh_render(registry: Any, rounds: int) -> tuple[float, bytes]:
    """Median time of MetricsExposition's fresh answer to Prometheus (render + gzip)."""
    times = []
    body = b""
    for _ in range(rounds):
        exposition = MetricsExposition(registry)
        started = time.perf_counter()
        body = asyncio.run(exposition.render(PROMETHEUS_ACCEPT, "gzip")).body
        times.append(time.perf_counter() - started)
    return statistics.median(times), body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-http", action="store_true", help="skip the served-over-HTTP runs")
    args = parser.parse_args()
    n = args.sources
    disable_created_metrics()  # type: ignore[no-untyped-call]

    old = busy_registry(n, before=True).registry
    old_s, old_om = timed(lambda: openmetrics_latest(old), args.rounds)  # type: ignore[no-untyped-call]
    old_gz = gzip.compress(old_om, GZIP_LEVEL)

    # Cold: a registry rendered for the first time; warm: the next render after a busy second.
    colds, warms = [], []
    rng = random.Random(17)
    metrics = busy_registry(n)
    new_om = b""
    for _ in range(args.rounds):
        metrics = busy_registry(n)
        started = time.perf_counter()
        new_om = encode(metrics.registry, openmetrics=True)
        colds.append(time.perf_counter() - started)
        busy_second(metrics, n, rng)
        started = time.perf_counter()
        encode(metrics.registry, openmetrics=True)
        warms.append(time.perf_counter() - started)
    cold_s, warm_s = statistics.median(colds), statistics.median(warms)
    new_gz = gzip.compress(new_om, GZIP_LEVEL)
    served_s, _ = fresh_render(metrics.registry, args.rounds)

    kib = 1024
    old_n, new_n = samples_in(old_om), samples_in(new_om)
    print(f"{n} sources; OpenMetrics, as Prometheus asks for it")
    print(
        f"before: prometheus_client, {old_n} samples ({old_n / n:.1f} per source):"
        f" {old_s * 1000:.1f} ms per render, {len(old_om) / kib:,.0f} KiB,"
        f" gzip {len(old_gz) / kib:,.0f} KiB"
    )
    print(
        f"after:  monitor.metrics.render, {new_n} samples ({new_n / n:.1f} per source):"
        f" cold {cold_s * 1000:.1f} ms, warm {warm_s * 1000:.1f} ms"
        f" ({CHANGED_SOURCES} polls + {ITEM_EVENTS} items since the last render),"
        f" {len(new_om) / kib:,.0f} KiB, gzip {len(new_gz) / kib:,.0f} KiB"
    )
    print(
        "after:  /metrics' fresh answer to Prometheus (warm render + gzip):"
        f" {served_s * 1000:.1f} ms"
    )
    print(
        f"ratios: samples {old_n / new_n:.1f}x fewer; size {len(old_om) / len(new_om):.1f}x"
        f" smaller raw, {len(old_gz) / len(new_gz):.1f}x gzipped; render {old_s / cold_s:.0f}x"
        f" faster cold, {old_s / warm_s:.0f}x warm"
    )
    per_source_cost(new_om, n)
    if not args.no_http:
        asyncio.run(served(metrics, scrapers=10, interval=0.25, seconds=3))
        asyncio.run(served(metrics, scrapers=1, interval=5.0, seconds=20))


if __name__ == "__main__":
    main()
