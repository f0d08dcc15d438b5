"""/metrics in prometheus_client's formats (written by monitor.metrics.render), shared by
scrapers, and ready before the next scrape comes when rendering is slow."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector

from monitor.metrics.render import encoder as fast_encoder

# However many scrapers ask, a rendering of the registry is served for this many seconds after
# it is ready (per format); everyone in between gets the same bytes.
RENDER_MAX_AGE_SECONDS = 1.0
# A rendering that cost less CPU than this is not kept: rendering again is cheaper than serving
# figures up to a second old (a few sources render in a few milliseconds). At 1,000 sources a
# warm collection plus its gzip costs 40-60 ms of CPU, and a scrape that waits for it about as
# long again in wall time: kept, and rendered ahead, the scrape is answered in a few
# milliseconds (tests/bench/bench_metrics.py). CPU time of the rendering threads, so a busy
# machine does not change the decision.
CACHE_FROM_CPU_SECONDS = 0.02
OPENMETRICS = "application/openmetrics-text"
# gzip level for /metrics: level 1 already shrinks the repetitive exposition about 10x, at a
# fraction of the default level 9's time (tests/bench/bench_metrics.py).
GZIP_LEVEL = 1
# A slow rendering is redone this long before the next scrape is expected (on top of its own
# duration), so that scrape finds one ready: Prometheus scrapes at a steady interval.
AHEAD_MARGIN_SECONDS = 0.3


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, GZIP_LEVEL)


@dataclass(frozen=True)
class Rendering:
    """One rendering of the registry: the body as sent, its headers' values, when it was ready."""

    body: bytes
    content_type: str
    gzipped: bool
    ready: float
    kept: bool  # cached for reuse (its render was expensive enough)
    seconds: float = 0.0  # how long it took, from start to ready
    cpu: float = 0.0  # CPU seconds of its rendering threads (gzip: collection and compression)


Encoder = Callable[[Collector], bytes]


class MetricsExposition:
    """The registry in prometheus_client's formats, shared and at most 1 s old.

    The format follows the scraper's Accept header exactly as prometheus_client's own handlers
    do (`choose_encoder`: OpenMetrics when asked for, the classic text format otherwise), and
    the body is gzipped when Accept-Encoding allows. Each (format, gzip) rendering is served
    for `max_age` seconds from the moment it is ready; a scrape that finds none fresh starts
    one, and scrapes arriving meanwhile wait for that one instead of rendering again. So
    there is at most one render per format at a time and at most one per `max_age` seconds
    plus its own duration, and what a scrape gets was collected at most the render time plus
    `max_age` ago. The gzip variant is compressed from the plain rendering of the same format,
    so gzip and plain scrapers share one collection. Rendering (monitor.metrics.render) runs in
    a worker thread: at a thousand sources the first render takes over 100 ms
    (tests/bench/bench_metrics.py), which must not stall the event loop (prometheus_client's
    metrics are thread-safe; our custom collectors copy what they read). A rendering that cost
    less than `cache_from` seconds of CPU is not kept at all (concurrent scrapes still share
    it): below that a scrape is cheap and gets figures of the moment.
    """

    def __init__(
        self,
        registry: Collector,
        *,
        max_age: float = RENDER_MAX_AGE_SECONDS,
        cache_from: float = CACHE_FROM_CPU_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._max_age = max_age
        self.cache_from = cache_from
        self._monotonic = monotonic
        self._cache: dict[tuple[str, bool], Rendering] = {}
        self._pending: dict[tuple[str, bool], asyncio.Task[Rendering]] = {}
        # When a scrape that needed a new rendering last came, per format; and the renderings
        # started ahead of the next one.
        self._paced: dict[tuple[str, bool], float] = {}
        self._ahead: dict[tuple[str, bool], asyncio.Task[None]] = {}
        self.renders = 0  # registry collections (one per fresh plain rendering)
        self.compressions = 0

    async def render(self, accept: str, accept_encoding: str) -> Rendering:
        """The rendering for these request headers, fresh enough or waited for."""
        # prometheus_client decides the format; our encoder writes the same bytes faster.
        _, content_type = choose_encoder(accept)
        encoder = fast_encoder(openmetrics=content_type.startswith(OPENMETRICS))
        key = (content_type, gzip_accepted(accept_encoding))
        arrived = self._monotonic()
        rendering = await self._get(key, encoder)
        if rendering.kept:
            self._plan_ahead(key, encoder, arrived)
        return rendering

    def _plan_ahead(self, key: tuple[str, bool], encoder: Encoder, arrived: float) -> None:
        """When rendering is slow: render the next one so that it is ready just before the
        next round of scrapes, expected one interval after this round (at most one such
        rendering per round, so an idle service renders nothing)."""
        previous = self._paced.get(key)
        if previous is not None and arrived - previous < self._max_age:
            return  # another scraper of the same round
        self._paced[key] = arrived
        if previous is None or key in self._ahead:
            return
        latest = self._cache.get(key)
        took = latest.seconds if latest is not None else 0.0
        delay = (arrived - previous) - took - AHEAD_MARGIN_SECONDS - (self._monotonic() - arrived)
        if delay <= 0:
            return
        task = asyncio.create_task(self._render_later(key, encoder, delay), name=f"ahead {key}")
        self._ahead[key] = task
        task.add_done_callback(lambda _done: self._ahead.pop(key, None))

    async def _render_later(self, key: tuple[str, bool], encoder: Encoder, delay: float) -> None:
        await asyncio.sleep(delay)
        self._cache.pop(key, None)  # the next scrape gets this rendering, not an older one
        if key[1]:
            self._cache.pop((key[0], False), None)
        await self._get(key, encoder)

    async def close(self) -> None:
        """Stop the renderings planned ahead (the app is shutting down)."""
        for task in list(self._ahead.values()):
            task.cancel()
        await asyncio.gather(*self._ahead.values(), return_exceptions=True)

    async def _get(self, key: tuple[str, bool], encoder: Encoder) -> Rendering:
        cached = self._cache.get(key)
        if cached is not None and self._monotonic() - cached.ready < self._max_age:
            return cached
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(self._produce(key, encoder), name=f"render {key}")
            self._pending[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        # A scraper that goes away must not cancel the rendering the others wait for.
        return await asyncio.shield(task)

    def _settle(self, key: tuple[str, bool], task: asyncio.Task[Rendering]) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]
        if not task.cancelled() and task.exception() is None and task.result().kept:
            rendering = task.result()
            # Expired entries go, so odd Accept headers cannot pile renderings up.
            now = self._monotonic()
            self._cache = {k: v for k, v in self._cache.items() if now - v.ready < self._max_age}
            self._cache[key] = rendering

    async def _produce(self, key: tuple[str, bool], encoder: Encoder) -> Rendering:
        content_type, gzipped = key
        started = self._monotonic()
        if gzipped:
            plain = await self._get((content_type, False), encoder)
            body, cost = await asyncio.to_thread(self._timed, _gzip, plain.body)
            self.compressions += 1
            took = self._monotonic() - started
            # What a scraper waits for is collection and compression: a gzipped answer is kept
            # when both together cost enough (at 1,000 sources a cheap warm collection plus the
            # gzip of 5 MB took 60-90 ms, so every Prometheus scrape waited for it).
            cpu = plain.cpu + cost
            kept = plain.kept or cpu >= self.cache_from
            return Rendering(body, content_type, True, plain.ready, kept, took, cpu)
        body, cost = await asyncio.to_thread(self._timed, encoder, self._registry)
        self.renders += 1
        ready = self._monotonic()
        kept = cost >= self.cache_from
        return Rendering(body, content_type, False, ready, kept, ready - started, cost)

    @staticmethod
    def _timed(work: Callable[[Any], bytes], argument: Any) -> tuple[bytes, float]:
        """work(argument), and the CPU seconds this thread spent on it."""
        started = time.thread_time()
        body = work(argument)
        return body, time.thread_time() - started


EXPOSITION = web.AppKey("metrics_exposition", MetricsExposition)
