"""MetricsExposition: one render shared by concurrent scrapes, kept 1 s only when it was costly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.web.exposition import MetricsExposition


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


async def test_a_slow_render_is_redone_just_before_the_next_scrape_is_due() -> None:
    """Scrapes 1.5 s apart (a steady interval): after the second, the third is rendered ahead
    of time, so it is served from a rendering well under a second old, without waiting."""
    metrics, costly, now = exposition(cpu=0.06)
    gzip_om = ("application/openmetrics-text; version=1.0.0", "gzip")
    await metrics.render(*gzip_om)  # the first scrape: nothing to go by yet
    now[0] += 1.5
    await metrics.render(*gzip_om)  # one interval later: the next is planned 1.5 - 0.3 s on
    assert costly.collections == 2
    await asyncio.sleep(0.5)
    assert costly.collections == 2  # not yet
    now[0] += 1.4  # (fake) time of the early rendering, 0.1 s before the third scrape
    await asyncio.sleep(1.0)
    assert costly.collections == 3 and metrics.compressions == 3  # rendered ahead, gzipped
    now[0] += 0.1
    third = await metrics.render(*gzip_om)
    assert costly.collections == 3  # served at once, from the rendering made ahead
    assert now[0] - third.ready == pytest.approx(0.1)
    await metrics.close()


async def test_nothing_is_rendered_ahead_without_steady_scrapes() -> None:
    metrics, costly, _ = exposition(cpu=0.06)
    await metrics.render("", "")
    await asyncio.sleep(0.3)
    assert costly.collections == 1  # one scrape says nothing about when the next comes
    metrics_cheap, cheap, now_cheap = exposition(cpu=0.0)
    await metrics_cheap.render("", "")
    now_cheap[0] += 1.5
    await metrics_cheap.render("", "")
    await asyncio.sleep(1.4)
    assert cheap.collections == 2  # cheap renderings are done when asked, never ahead
