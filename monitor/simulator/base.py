"""FakeServer: what every fake platform server shares — lifecycle, injected faults, holds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Generic, Literal, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

FaultT = TypeVar("FaultT")
KeyT = TypeVar("KeyT")
ValueT = TypeVar("ValueT")
RetryAfter = Literal["seconds", "http-date", "none"]
# Marks a response whose connection was cut: the client never sees its status.
DROPPED = web.ResponseKey("simulator.dropped", bool)


@dataclass(frozen=True, kw_only=True)
class Delay:
    """Wait before answering normally (provokes client timeouts; cut short on shutdown)."""

    seconds: float


@dataclass(frozen=True, kw_only=True)
class TruncatedBody:
    """Announce the full Content-Length, send half the body, then drop the connection."""


@dataclass(frozen=True, kw_only=True)
class Disconnect:
    """Close the connection without answering (and, unless told otherwise, the retry too)."""

    # aiohttp (like most clients) silently retries an idempotent request once after a
    # disconnect, so by default the retry of the same path is dropped too and the caller sees
    # the failure; `retries_too=False` drops one connection only (a blip the client absorbs).

    retries_too: bool = True


@dataclass(frozen=True, kw_only=True)
class HttpStatus:
    """Answer with a plain HTTP error, as a proxy or load balancer in front would."""

    status: int = 500
    body: str = "<html><body><h1>500 Internal Server Error</h1></body></html>"
    content_type: str = "text/html"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MalformedJson:
    """Answer 200 with a JSON content type and a body that is not valid JSON."""


@dataclass(frozen=True, kw_only=True)
class Throttle:
    """A throttle answer (429 or 503) whose Retry-After is rendered when it is sent."""

    # What proxies and the platforms themselves send: the phpbb package's [PROXY] and [BUSY],
    # the flarum package's [FLOOD] and [MAINT].
    status: int = 429
    wait_seconds: int = 30
    # "seconds" (delta-seconds), "http-date" (the moment `wait_seconds` from the server's
    # clock) or "none" (no header: nginx limit_req, phpBB's own session limit).
    retry_after: RetryAfter = "seconds"

    def headers(self, now: datetime) -> dict[str, str]:
        """The Retry-After header in the chosen form, if any."""
        if self.retry_after == "seconds":
            return {"Retry-After": str(self.wait_seconds)}
        if self.retry_after == "http-date":
            moment = now.astimezone(UTC) + timedelta(seconds=self.wait_seconds)
            return {"Retry-After": format_datetime(moment, usegmt=True)}
        return {}

    def reason(self) -> str:
        """The status line's reason phrase."""
        return "Too Many Requests" if self.status == 429 else "Service Temporarily Unavailable"


@dataclass(kw_only=True)
class Injected(Generic[FaultT]):
    """An injected fault and how many more requests it applies to (None: until cleared)."""

    fault: FaultT
    remaining: int | None
    path_contains: str | None
    # Only every `every`-th matching request gets the fault (a throttle that lets most through).
    every: int = 1
    seen: int = 0


class FakeServer(Generic[FaultT]):
    """A real aiohttp server on loopback whose requests tests can break, delay or hold."""

    # Subclasses provide `_routes()` and `_platform_fault()` and may override `_url_suffix()`,
    # `_truncated_sample()` and `_fault_headers()`; their handlers run inside `_counted()` and
    # start with `_faulted()`, so every fake counts, delays, holds and breaks requests alike.

    def __init__(self) -> None:
        self.peak_concurrency = 0
        self._in_flight = 0
        self._faults: list[Injected[FaultT]] = []
        self._delays: dict[str, float] = {}
        self._holds: dict[str, asyncio.Event] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    def make_app(self) -> web.Application:
        """A fresh aiohttp application serving this fake."""
        self._closing = asyncio.Event()
        app = web.Application(middlewares=self._middlewares())
        self._routes(app.router)
        app.on_shutdown.append(self._on_shutdown)
        return app

    def _routes(self, router: web.UrlDispatcher) -> None:
        """Register the fake's handlers."""
        raise NotImplementedError

    def _middlewares(self) -> list[Middleware]:
        """Middlewares of the application (none by default)."""
        return []

    def _url_suffix(self) -> str:
        """What follows host:port in `base_url` (an API version, a board's path)."""
        return ""

    # --- faults, delays and holds ---------------------------------------------------------

    def inject(
        self, fault: FaultT, *, times: int | None = 1, path_contains: str | None = None
    ) -> None:
        """Answer the next `times` matching requests (None: until cleared) with `fault`."""
        self._faults.append(Injected(fault=fault, remaining=times, path_contains=path_contains))

    def inject_every(self, fault: FaultT, every: int, *, path_contains: str | None = None) -> None:
        """Answer every `every`-th matching request with `fault`, until cleared."""
        # How real platforms throttle a long poll: most requests pass, and the Nth in a window
        # is refused at any point of the poll (Discourse's per-minute limits, Graph's codes
        # 4/17/32/613/80001 that arrive mid-poll, a proxy's 503 burst).
        if every < 1:
            raise ValueError("every must be at least 1")
        self._faults.append(
            Injected(fault=fault, remaining=None, path_contains=path_contains, every=every)
        )

    @property
    def pending_faults(self) -> int:
        """Injected faults not yet used up."""
        return len(self._faults)

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        self._faults.clear()

    def delay_path(self, path_contains: str, seconds: float) -> None:
        """Delay every request whose path contains the substring (0 removes the delay)."""
        if seconds > 0:
            self._delays[path_contains] = seconds
        else:
            self._delays.pop(path_contains, None)

    def hold(self, path_contains: str) -> asyncio.Event:
        """Hold requests whose path contains the substring until the returned event is set."""
        event = self._holds.get(path_contains)
        if event is None or event.is_set():
            event = asyncio.Event()
            self._holds[path_contains] = event
        return event

    def release_all(self) -> None:
        """Release every held request and remove all holds and delays."""
        for event in self._holds.values():
            event.set()
        self._holds.clear()
        self._delays.clear()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on host:port (0 = any free port); see `base_url`."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        # A short shutdown_timeout: a held request must not keep stop() waiting for a minute.
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._base_url = f"http://{host}:{runner.addresses[0][1]}{self._url_suffix()}"

    async def stop(self) -> None:
        """Stop serving; delayed and held requests are cut short."""
        runner, self._runner = self._runner, None
        self._base_url = None
        if runner is not None:
            self._closing.set()
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        """The URL an operator would configure, once started."""
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not running; await start() first")
        return self._base_url

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()
        for event in self._holds.values():
            event.set()

    # --- request plumbing -----------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests being answered right now."""
        return self._in_flight

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Count one request in flight while it is answered (and the peak)."""
        self._in_flight += 1
        self.peak_concurrency = max(self.peak_concurrency, self._in_flight)
        try:
            yield
        finally:
            self._in_flight -= 1

    async def _faulted(
        self, request: web.Request, *, periodic: bool = True
    ) -> web.StreamResponse | None:
        """Wait out delays and holds, then the injected fault's answer, if there is one."""
        await self._wait_for_path(request.path)
        fault = self._take_fault(request.path, periodic=periodic)
        if fault is None:
            return None
        return await self._apply_fault(fault, request)

    async def _apply_fault(self, fault: FaultT, request: web.Request) -> web.StreamResponse | None:
        """Answer with the fault, or return None to carry on normally (after a Delay)."""
        if isinstance(fault, Delay):
            await self._pause(fault.seconds)
            return None
        if isinstance(fault, HttpStatus):
            return web.Response(
                status=fault.status,
                text=fault.body,
                content_type=fault.content_type,
                headers=self._fault_headers(dict(fault.headers)),
            )
        if isinstance(fault, TruncatedBody):
            full, content_type = self._truncated_sample(request)
            return await self._truncated(request, full, content_type, self._fault_headers({}))
        if isinstance(fault, Disconnect):
            return self._disconnect(request, fault)
        return await self._platform_fault(fault, request)

    async def _platform_fault(
        self, fault: FaultT, request: web.Request
    ) -> web.StreamResponse | None:
        """The answer to a fault only this platform knows."""
        raise NotImplementedError

    def _truncated_sample(self, request: web.Request) -> tuple[bytes, str]:
        """A realistic body (and its content type) for TruncatedBody to cut in half."""
        raise NotImplementedError

    def _fault_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Headers the platform adds to a plain fault answer (none by default)."""
        return headers

    async def _wait_for_path(self, path: str) -> None:
        delay = max((s for sub, s in self._delays.items() if sub in path), default=0.0)
        if delay > 0:
            await self._pause(delay)
        for substring, event in list(self._holds.items()):
            if substring in path and not event.is_set():
                await self._wait_either(event)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    async def _wait_either(self, event: asyncio.Event) -> None:
        waiters = [
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self._closing.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _truncated(
        self,
        request: web.Request,
        full: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Promise `full` in Content-Length, send half of it, then drop the connection."""
        response = web.StreamResponse(status=200, headers=headers)
        response.content_type = content_type
        response.content_length = len(full)
        await response.prepare(request)
        await response.write(full[: len(full) // 2])
        _close_transport(request)
        response[DROPPED] = True
        return response

    def _disconnect(self, request: web.Request, fault: Disconnect) -> web.Response:
        """Drop the connection (and, unless told otherwise, the client's automatic retry)."""
        if fault.retries_too:
            again = Injected(
                fault=Disconnect(retries_too=False), remaining=1, path_contains=request.path
            )
            # Every fake lists Disconnect in its Fault union; the base cannot spell that.
            self._faults.insert(0, again)  # type: ignore[arg-type]
        _close_transport(request)
        response = web.Response(status=500)  # never reaches the client: the socket is closed
        response[DROPPED] = True
        return response

    def _take_fault(self, path: str, *, periodic: bool = True) -> FaultT | None:
        """The fault for this request, if any; `periodic=False` skips every-Nth throttles."""
        for injected in self._faults:
            if injected.path_contains is None or injected.path_contains in path:
                if injected.every > 1:
                    if not periodic:
                        continue
                    injected.seen += 1
                    if injected.seen % injected.every:
                        continue
                if injected.remaining is not None:
                    injected.remaining -= 1
                    if injected.remaining <= 0:
                        self._faults.remove(injected)
                return injected.fault
        return None


def json_response(
    raw: bytes,
    *,
    status: int = 200,
    content_type: str = "application/json",
    charset: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A response with an already serialized JSON body."""
    return web.Response(
        body=raw,
        status=status,
        content_type=content_type,
        charset=charset,
        headers=dict(headers or {}),
    )


def find(table: Mapping[KeyT, ValueT], key: KeyT, what: str) -> ValueT:
    """`table[key]`, or a KeyError that names what is missing (for the scripting methods)."""
    value = table.get(key)
    if value is None:
        raise KeyError(f"no {what} {key!r}")
    return value


def _close_transport(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()
