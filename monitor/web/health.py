"""/metrics, /healthz and /readyz."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import hdrs, web

from monitor.durations import human_duration
from monitor.poller import PolledSource
from monitor.web.exposition import EXPOSITION, MetricsExposition
from monitor.web.keys import CLOCK, COORDINATOR, EXPORTED, STORE
from monitor.words import counted

# A source counts as recently polled within this many intervals of its last success.
READY_INTERVALS = 3
READY_MIN_SECONDS = 60.0


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
    coordinator = request.app[COORDINATOR]
    # This instance's own sources: the others are the other instances' to report.
    for entry in coordinator.sources.values():
        if not coordinator.holds(entry.name):
            continue
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
    """Register the operational endpoints (the app's EXPORTED must be set already)."""
    exposition = MetricsExposition(app[EXPORTED])
    app[EXPOSITION] = exposition

    async def stop_rendering(_app: web.Application) -> None:
        await exposition.close()

    app.on_cleanup.append(stop_rendering)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
