"""How the HTTP port faces the internet: timeouts, a connection cap, quiet protocol errors.

aiohttp gives the idle keep-alive timeout and the limits on the request line and header sizes.
The rest is done here, at the asyncio protocol level under aiohttp, so it behaves the same on
every aiohttp version:

- **Header timeout.** From the moment a connection opens, or the first byte of a later request
  on a kept-alive connection, the request line and headers must be complete (a handler starts)
  within `header_timeout`; otherwise the connection is closed. One byte every few seconds
  ("slowloris") no longer holds a connection for ever.
- **Connection cap.** At most `max_connections` at once. At the cap, a new connection evicts
  the one that has waited longest without a request in progress (a slow or idle client); only
  when every connection is busy being served is the newcomer answered 503 and closed. So a
  flood of slow clients never locks Prometheus out of /metrics.
- **Protocol errors** (an unparseable request line, oversized headers) and disconnects are one
  info line and a count in `webcare_http_rejected_total{endpoint="protocol"}`; aiohttp would
  log each as an error with a traceback.

A request's body has its own timeout (`monitor.web.edge.BODY_TIMEOUT_SECONDS`), and bodies are
limited to the application's `client_max_size`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from monitor.logging import get_logger
from monitor.metrics import Metrics
from monitor.web.edge import one_line
from monitor.web.keys import METRICS

log = get_logger("monitor.web.server")

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class ListenError(Exception):
    """The service cannot listen on its address (port in use, no such address, no right)."""

    @classmethod
    def wrap(cls, host: str | None, port: int | None, err: OSError) -> ListenError:
        """The operator's one line for a failed bind."""
        why = err.strerror or str(err)
        if err.errno == errno.EADDRINUSE:
            why = "the port is in use (another webcare-monitor? pick [http] port or --port)"
        elif err.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges)"
        return cls(f"cannot listen on {host or '*'}:{port}: {why}")


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """What one client may hold of the server."""

    header_timeout: float = 10.0  # request line + headers complete within this
    keepalive_timeout: float = 75.0  # an idle kept-alive connection is closed after this
    max_connections: int = 512  # open connections at once (each is a file descriptor)
    max_line_size: int = 8190  # request line, bytes
    max_field_size: int = 8190  # one header line, bytes


# Read at each start (not bound at import), so tests can shorten them.
DEFAULT_LIMITS = ServerLimits()


class ServerLog:
    """Stands in for aiohttp's server logger: a client's errors are one line, bugs keep theirs.

    aiohttp reports a request it cannot parse, or a client that went away, with
    `logger.exception(...)`: a traceback at error level for something a stranger on the
    internet can cause at will.
    """

    def __init__(self, metrics: Metrics | None) -> None:
        self._metrics = metrics

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **_: Any) -> None:
        """One info line for a protocol error or disconnect; anything else as aiohttp says."""
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError | ConnectionError):
            reason = "malformed" if isinstance(exc, HttpProcessingError) else "aborted"
            if self._metrics is not None:
                self._metrics.http_rejected.labels("protocol", reason).inc()
            log.info(
                "request not understood" if reason == "malformed" else "client went away",
                error=one_line(f"{type(exc).__name__}: {exc}"),
                peer=args[0] if args else None,
            )
            return
        log.error(_format(msg, args), exc_info=exc or True)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """As logging.Logger.error."""
        log.error(_format(msg, args), exc_info=kwargs.get("exc_info"))

    def warning(self, msg: str, *args: Any, **_: Any) -> None:
        """As logging.Logger.warning."""
        log.warning(_format(msg, args))

    def info(self, msg: str, *args: Any, **_: Any) -> None:
        """As logging.Logger.info."""
        log.info(_format(msg, args))

    def debug(self, msg: str, *args: Any, **_: Any) -> None:
        """As logging.Logger.debug (without tracebacks: debug lines stay one line too)."""
        log.debug(_format(msg, args))


def _format(msg: str, args: tuple[Any, ...]) -> str:
    try:
        return msg % args if args else msg
    except (TypeError, ValueError):
        return " ".join([msg, *map(str, args)])


class ConnectionGuard:
    """Every open connection of one server: the cap, the eviction order, the counts."""

    def __init__(self, limits: ServerLimits, metrics: Metrics | None) -> None:
        self.limits = limits
        self._metrics = metrics
        # Insertion-ordered: the scan for a victim meets the oldest connections first.
        self._open: dict[GuardedConnection, None] = {}
        self._full = False

    @property
    def open_connections(self) -> int:
        """Connections admitted and not yet closed."""
        return len(self._open)

    def admit(self, connection: GuardedConnection) -> bool:
        """Make room for a new connection if need be; False when every one is busy."""
        if len(self._open) >= self.limits.max_connections:
            if not self._full:
                self._full = True
                log.info(
                    "connection limit reached; idle and slow connections make way",
                    max_connections=self.limits.max_connections,
                )
            victim = min(
                (c for c in self._open if not c.busy), key=lambda c: c.waiting_since, default=None
            )
            if victim is None:
                self.count("over_capacity")
                return False
            self.count("evicted")
            self.forget(victim)
            victim.close()
        elif self._full and len(self._open) < self.limits.max_connections * 0.9:
            self._full = False
            log.info("below the connection limit again", open=len(self._open))
        self._open[connection] = None
        return True

    def forget(self, connection: GuardedConnection) -> None:
        """The connection is closed (or about to be)."""
        self._open.pop(connection, None)

    def count(self, reason: str) -> None:
        """Count a connection refused or cut, by reason."""
        if self._metrics is not None:
            self._metrics.http_rejected.labels("connection", reason).inc()


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, wrapped to time its headers and allow eviction.

    The edge middleware calls `request_started` once a request's headers are parsed and its
    handler runs, and `request_finished` after; everything else is passed through.
    """

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._requests = 0
        self.waiting_since = 0.0  # loop time since which no request has been in progress

    @property
    def busy(self) -> bool:
        """A request of this connection is being handled."""
        return self._requests > 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit (or refuse) the connection and start its header clock."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._guard.admit(self):
            transport.write(_BUSY)
            transport.close()
            return
        self._inner = self._factory()
        self._expect_request()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Bytes of a new request on an idle connection start its header clock."""
        if self._inner is None:
            return
        if not self.busy and self._timer is None:
            self._expect_request()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        """Passed through."""
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        """Passed through; the connection leaves the guard."""
        self._cancel_timer()
        self._guard.forget(self)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Passed through."""
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Passed through."""
        if self._inner is not None:
            self._inner.resume_writing()

    def request_started(self) -> None:
        """A request's headers are complete: its header clock stops."""
        self._requests += 1
        self._cancel_timer()

    def request_finished(self) -> None:
        """The handler is done; the connection idles until the next request's first byte."""
        self._requests = max(0, self._requests - 1)
        if not self.busy:
            self.waiting_since = asyncio.get_running_loop().time()

    def close(self) -> None:
        """Close the connection (evicted or timed out)."""
        self._cancel_timer()
        if self._transport is not None:
            self._transport.close()

    def _expect_request(self) -> None:
        loop = asyncio.get_running_loop()
        self.waiting_since = loop.time()
        self._cancel_timer()
        self._timer = loop.call_later(self._guard.limits.header_timeout, self._header_timeout)

    def _header_timeout(self) -> None:
        self._timer = None
        if self.busy:
            return
        self._guard.count("header_timeout")
        peer = self._transport.get_extra_info("peername") if self._transport else None
        log.debug("request headers too slow; connection closed", peer=peer)
        self._guard.forget(self)
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class GuardedSite(web.BaseSite):
    """A listening socket (given, or bound to host:port) serving through GuardedConnection."""

    __slots__ = ("_guard", "_host", "_port", "_sock")

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        *,
        sock: socket.socket | None = None,
        host: str | None = None,
        port: int | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._guard = guard
        self._sock = sock
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        """Where the site listens."""
        if self._sock is not None:
            host, port = self._sock.getsockname()[:2]
        else:
            host, port = self._host or "0.0.0.0", self._port
        return f"http://{host}:{port}"

    async def start(self) -> None:
        """Listen, handing every connection to a GuardedConnection around aiohttp's protocol."""
        await super().start()
        server = self._runner.server
        assert server is not None
        guard = self._guard

        def factory() -> asyncio.Protocol:
            return GuardedConnection(guard, server)

        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(factory, sock=self._sock, backlog=self._backlog)
        else:
            self._server = await loop.create_server(
                factory, self._host, self._port or 0, backlog=self._backlog, reuse_address=True
            )


def make_runner(
    app: web.Application,
    *,
    limits: ServerLimits | None = None,
    shutdown_timeout: float = 10.0,
) -> web.AppRunner:
    """An AppRunner with the keep-alive timeout, header size limits and the quiet logger."""
    limits = limits or DEFAULT_LIMITS
    return web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=limits.keepalive_timeout,
        max_line_size=limits.max_line_size,
        max_field_size=limits.max_field_size,
        logger=ServerLog(app.get(METRICS)),
    )


async def start_sites(
    runner: web.AppRunner,
    *,
    sockets: list[socket.socket] | None = None,
    host: str | None = None,
    port: int | None = None,
    limits: ServerLimits | None = None,
    backlog: int = 128,
) -> ConnectionGuard:
    """Serve `runner` (set up) on the sockets, or on host:port, under one connection guard."""
    guard = ConnectionGuard(limits or DEFAULT_LIMITS, runner.app.get(METRICS))
    if sockets is None:
        try:
            await GuardedSite(runner, guard, host=host, port=port, backlog=backlog).start()
        except OSError as err:
            raise ListenError.wrap(host, port, err) from err
    else:
        for sock in sockets:
            await GuardedSite(runner, guard, sock=sock, backlog=backlog).start()
    return guard


def run_app(
    app: web.Application | Awaitable[web.Application],
    *,
    host: str,
    port: int,
    shutdown_timeout: float = 10.0,
) -> None:
    """Serve `app` on host:port until SIGINT or SIGTERM (what `demo` runs on)."""

    async def main() -> None:
        application = app if isinstance(app, web.Application) else await app
        runner = make_runner(application, shutdown_timeout=shutdown_timeout)
        await runner.setup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await start_sites(runner, host=host, port=port)
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
