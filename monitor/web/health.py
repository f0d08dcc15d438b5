"""/metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import hdrs, web
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector

from monitor.durations import human_duration
from monitor.poller import PolledSource
from monitor.web.keys import CLOCK, COORDINATOR, METRICS, STORE
from monitor.words import counted

# A source counts as recently polled within this many intervals of its last success.
READY_INTERVALS = 3
READY_MIN_SECONDS = 60.0
# However many scrapers ask, a rendering of the registry is served for this many seconds after
# it is ready (per format); everyone in between gets the same bytes.
RENDER_MAX_AGE_SECONDS = 1.0
# A rendering that cost less CPU than this is not kept: rendering again is cheaper than serving
# figures up to a second old (a few sources render in a few milliseconds; 1,000 in about a
# second). CPU time of the rendering thread, so a busy machine does not change the decision.
CACHE_FROM_CPU_SECONDS = 0.05
# gzip level for /metrics: level 1 already shrinks the repetitive exposition about 10x, at a
# fraction of the default level 9's time (tests/bench/bench_metrics.py).
GZIP_LEVEL = 1


@dataclass(frozen=True)
class Rendering:
    """One rendering of the registry: the body as sent, its headers' values, when it was ready."""

    body: bytes
    content_type: str
    gzipped: bool
    ready: float
    kept: bool  # cached for reuse (its render was expensive enough)


Encoder = Callable[[Collector], bytes]


class MetricsExposition:
    """The registry rendered through prometheus_client's encoders, shared and at most 1 s old.

    The format follows the scraper's Accept header exactly as prometheus_client's own handlers
    do (`choose_encoder`: OpenMetrics when asked for, the classic text format otherwise), and
    the body is gzipped when Accept-Encoding allows. Each (format, gzip) rendering is served
    for `max_age` seconds from the moment it is ready; a scrape that finds none fresh starts
    one, and scrapes arriving meanwhile wait for that one instead of rendering again. So
    there is at most one render per format at a time and at most one per `max_age` seconds
    plus its own duration, and what a scrape gets was collected at most the render time plus
    `max_age` ago. The gzip variant is compressed from the plain rendering of the same format,
    so gzip and plain scrapers share one collection. Rendering runs in a worker thread: at a
    thousand sources prometheus_client takes about a second (tests/bench/bench_metrics.py),
    which must not stall the event loop (prometheus_client's metrics are thread-safe; our
    custom collectors copy what they read). A rendering that cost less than `cache_from`
    seconds of CPU is not kept at all (concurrent scrapes still share it): below that a
    scrape is cheap and gets figures of the moment.
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
        self.renders = 0  # registry collections (one per fresh plain rendering)
        self.compressions = 0

    async def render(self, accept: str, accept_encoding: str) -> Rendering:
        """The rendering for these request headers, fresh enough or waited for."""
        encoder, content_type = choose_encoder(accept)
        return await self._get((content_type, gzip_accepted(accept_encoding)), encoder)

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
        if gzipped:
            plain = await self._get((content_type, False), encoder)
            body = await asyncio.to_thread(gzip.compress, plain.body, GZIP_LEVEL)
            self.compressions += 1
            return Rendering(body, content_type, True, plain.ready, plain.kept)
        body, cost = await asyncio.to_thread(self._encode, encoder)
        self.renders += 1
        return Rendering(body, content_type, False, self._monotonic(), cost >= self.cache_from)

    def _encode(self, encoder: Encoder) -> tuple[bytes, float]:
        """The body, and the CPU seconds this thread spent on it."""
        started = time.thread_time()
        body = encoder(self._registry)
        return body, time.thread_time() - started


EXPOSITION = web.AppKey("metrics_exposition", MetricsExposition)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition (negotiated format, gzip), rendered from memory, at most 1 s old."""
    rendering = await request.app[EXPOSITION].render(
        ",".join(request.headers.getall(hdrs.ACCEPT, [])),
        ",".join(request.headers.getall(hdrs.ACCEPT_ENCODING, [])),
    )
    headers = {"Content-Type": rendering.content_type, "Vary": "Accept, Accept-Encoding"}
    if rendering.gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=rendering.body, headers=headers)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process is serving requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store answers and every source was polled successfully of late."""
    problems: list[str] = []
    try:
        await request.app[STORE].ping()
    except Exception as err:  # any failure means "not ready", with the reason shown
        problems.append(f"store: {type(err).__name__}")
    now = request.app[CLOCK].now()
    for entry in request.app[COORDINATOR].sources.values():
        limit = timedelta(seconds=max(READY_MIN_SECONDS, READY_INTERVALS * entry.interval))
        if entry.last_success is None:
            problems.append(f"{entry.name}: {_first_poll_state(entry)}")
        elif now - entry.last_success > limit:
            problems.append(f"{entry.name}: last successful poll {entry.last_success.isoformat()}")
    status = 200 if not problems else 503
    return web.json_response({"ready": not problems, "problems": problems}, status=status)


def _first_poll_state(entry: PolledSource) -> str:
    """Why a source has no successful poll yet, in the operator's words."""
    done = ""
    if entry.backfill is not None:
        eta = entry.backfill.eta_seconds()
        left = f", about {human_duration(eta)} to go" if eta is not None else ""
        done = f"backfilling: {entry.backfill.describe()}{left}"
    if entry.last_error is not None and entry.interruptions:
        times = counted(entry.interruptions, "time")
        state = f"backfill interrupted {times} so far, resuming ({entry.last_error[:300]})"
        return f"{done}; {state}" if done else state
    if entry.last_error is not None:
        return f"first poll failed, retrying ({entry.last_error[:300]})"
    if done:
        return done
    if entry.lock.locked():
        return "first poll in progress (reading the backfill history)"
    return "not polled yet"


def add_routes(app: web.Application) -> None:
    """Register the operational endpoints (the app's METRICS must be set already)."""
    app[EXPOSITION] = MetricsExposition(app[METRICS].registry)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
