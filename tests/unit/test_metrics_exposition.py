"""MetricsExposition: one render shared by concurrent scrapes, kept 1 s only when it was costly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.web.health import MetricsExposition


class Costly(Collector):
    """A collector that burns `cpu` seconds of CPU per collection and counts collections."""

    def __init__(self, cpu: float) -> None:
        self.cpu = cpu
        self.collections = 0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.thread_time()
        while time.thread_time() - started < self.cpu:
            pass
        self.collections += 1
        yield GaugeMetricFamily("webcare_test_collections", "Collections.", self.collections)


def exposition(cpu: float) -> tuple[MetricsExposition, Costly, list[float]]:
    registry = CollectorRegistry()
    costly = Costly(cpu)
    registry.register(costly)
    now = [100.0]
    return MetricsExposition(registry, monotonic=lambda: now[0]), costly, now


async def test_a_costly_render_is_shared_and_reused_for_one_second() -> None:
    metrics, costly, now = exposition(cpu=0.06)
    first = await asyncio.gather(*(metrics.render("", enc) for enc in ("gzip", "") * 5))
    assert costly.collections == metrics.renders == 1
    assert metrics.compressions == 1
    assert {r.gzipped for r in first} == {True, False}
    now[0] += 0.9
    assert (await metrics.render("", "")).body == first[1].body
    assert costly.collections == 1
    now[0] += 0.2
    assert b"webcare_test_collections 2.0" in (await metrics.render("", "")).body
    assert costly.collections == 2
    # OpenMetrics is a rendering of its own.
    om = await metrics.render("application/openmetrics-text; version=1.0.0", "")
    assert om.content_type.startswith("application/openmetrics-text")
    assert costly.collections == 3


async def test_a_cheap_render_is_shared_while_in_flight_but_not_kept() -> None:
    metrics, costly, _ = exposition(cpu=0.0)
    await asyncio.gather(*(metrics.render("", "") for _ in range(5)))
    assert costly.collections == 1
    await metrics.render("", "")
    assert costly.collections == 2
