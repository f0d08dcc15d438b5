"""The `run` process: one listening socket, a service rebuilt from the config file on SIGHUP.

A reload tears the running service down and builds a new one from the re-read config on the
same listening socket, exactly as a restart would but without closing the port:

1. The new file is read and validated first. Any ConfigError is logged problem by problem and
   the running service is left untouched.
2. The old service is shut down the ordinary aiohttp way (in-flight requests finish, every
   cleanup_ctx closes: the poller stops, alert delivery stops, the database is closed).
3. A service is built from the new config by `create_app` and started on the same socket.
   Connections that arrive meanwhile wait in the kernel's listen backlog: none is refused.
4. If the new service fails to start (say its database is unreachable), the previous config is
   started again; if even that fails the process exits non-zero and systemd restarts it.

Why rebuild rather than patch the running service: everything worth keeping is in the store
(messages, items, cursors, the alert outbox), and startup is the path that restores it, the
one the restart tests prove loses nothing and counts nothing twice. Swapping parts in place
would add a second, untested way of reaching the same state.

One thing does cross over: the Metrics object (registry and instruments) of the process. The
new generation is built with it, so counters and histograms continue where they were instead
of starting again from zero (which a restart still does). The series of sources and receivers
the new config removed are dropped; when the SLA targets change, the two response-time
histograms (whose buckets include the targets) start again empty.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from monitor.cluster.identity import instance_name
from monitor.config import Config, ConfigError, load_config
from monitor.logging import configure_logging, get_logger
from monitor.metrics import Metrics
from monitor.store import StoreInUse
from monitor.systemd_notify import SystemdNotifier
from monitor.web.server import ListenError, make_runner, start_sites
from monitor.words import counted

log = get_logger("monitor.reload")

# A reload that takes longer than this is stuck: exit and let the service manager restart us.
RELOAD_TIMEOUT_SECONDS = 120.0
LISTEN_BACKLOG = 128

AppFactory = Callable[[Config], web.Application]


@dataclass(frozen=True)
class Overrides:
    """What `run`'s options set over the config file (`--instance`, `--port`), so several
    instances on one host can share one file; applied again to every reloaded config."""

    instance: str | None = None
    port: int | None = None

    def apply(self, config: Config) -> Config:
        """`config` with these settings in place of the file's (unchanged when none is set)."""
        update: dict[str, object] = {}
        if self.instance is not None:
            update["cluster"] = config.cluster.model_copy(update={"instance": self.instance})
        if self.port is not None:
            update["http"] = config.http.model_copy(update={"port": self.port})
        return config.model_copy(update=update) if update else config


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening TCP sockets for host:port, one per address family, as aiohttp's TCPSite binds."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, type_, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, type_, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # Each family gets its own socket, so IPv6 must not also claim the IPv4 port.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as err:
                sock.close()
                # As asyncio does: "localhost" on a host with IPv6 disabled still listens on IPv4.
                if err.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                    continue
                raise
            sockets.append(sock)
            sock.listen(LISTEN_BACKLOG)
    except OSError as err:
        for sock in sockets:
            sock.close()
        raise ListenError.wrap(host, port, err) from err
    if not sockets:
        raise ListenError(f"cannot listen on {host}:{port}: no usable address")
    return sockets


class ServiceRunner:
    """Serves the app built from the config on fixed sockets; reloads and stops on request."""

    def __init__(
        self,
        path: str | Path,
        config: Config,
        *,
        build: AppFactory | None = None,
        notifier: SystemdNotifier | None = None,
        shutdown_timeout: float = 10.0,
        overrides: Overrides | None = None,
    ) -> None:
        self._path = Path(path)
        self._overrides = overrides or Overrides()
        self._config = self._overrides.apply(config)
        self._build = build or self._create_app
        # The instruments of the first generation, handed to every later one (counters go on).
        self._metrics: Metrics | None = None
        self._notifier = notifier or SystemdNotifier.from_environ()
        self._shutdown_timeout = shutdown_timeout
        self._sockets: list[socket.socket] = []
        self._runner: web.AppRunner | None = None
        self._wake = asyncio.Event()
        self._stop_requested = False
        self._reload_requested = False
        self.reloads = 0  # completed transitions (applied, refused, or rolled back)

    @property
    def config(self) -> Config:
        """The config the running service was built from."""
        return self._config

    @property
    def app(self) -> web.Application:
        """The running service."""
        assert self._runner is not None, "not started"
        return self._runner.app

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each listening socket."""
        return [s.getsockname()[:2] for s in self._sockets]

    def request_reload(self) -> None:
        """Re-read the config file as soon as the current transition is over (SIGHUP)."""
        self._reload_requested = True
        self._wake.set()

    def request_stop(self) -> None:
        """Shut down gracefully (SIGTERM, SIGINT)."""
        self._stop_requested = True
        self._wake.set()

    async def run(self, *, started: Callable[[], None] | None = None) -> None:
        """Serve until a stop is requested; the sockets are bound first and kept throughout."""
        self._sockets = bind_sockets(self._config.http.host, self._config.http.port)
        watchdog = asyncio.create_task(self._notifier.feed_watchdog(), name="systemd-watchdog")
        try:
            self._runner = await self._start(self._config)
            log.info(
                "listening",
                urls=[f"http://{_url_host(h)}:{p}" for h, p in self.addresses],
                config=str(self._path),
                instance=instance_name(self._config),
            )
            self._notifier.ready(status=self._serving_status())
            if started is not None:
                started()
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._stop_requested:
                    break
                if self._reload_requested:
                    self._reload_requested = False
                    async with asyncio.timeout(RELOAD_TIMEOUT_SECONDS):
                        await self._reload()
                    self.reloads += 1
        finally:
            self._notifier.stopping()
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
            watchdog.cancel()
            for sock in self._sockets:
                sock.close()
            self._notifier.close()

    async def _reload(self) -> None:
        self._notifier.reloading(status=f"reloading {self._path}")
        log.info("reload requested", config=str(self._path))
        try:
            # The command line's --instance and --port hold for the re-read file too.
            new = self._overrides.apply(load_config(self._path))
        except ConfigError as err:
            log.error(
                "reload refused: the config has problems; still running with the previous one",
                config=str(self._path),
                problems=err.problems,
            )
            self._notifier.ready(
                status=f"reload refused: {err.count()} in {self._path}; " + self._serving_status()
            )
            return
        old = self._config
        if new == old:
            log.info("reload: config unchanged", config=str(self._path))
            self._notifier.ready(status=self._serving_status())
            return
        if (new.http.host, new.http.port) != (old.http.host, old.http.port):
            log.warning(
                "http.host and http.port take effect at the next restart",
                listening=[f"{h}:{p}" for h, p in self.addresses],
            )
        # Both generations may log while they hand over: redact the secrets of either.
        _configure_logging(new, extra_secrets=old.secrets())
        assert self._runner is not None
        await self._runner.cleanup()
        self._runner = None
        try:
            self._runner = await self._start(new)
        except Exception:
            log.exception("reload failed: the new config did not start; restoring the previous")
            _configure_logging(old)
            self._runner = await self._start(old)  # failing again ends the process (exit 1)
            self._notifier.ready(status="reload failed; " + self._serving_status())
            return
        self._config = new
        _configure_logging(new)
        await self._audit_reload(old, new)
        log.info(
            "reloaded",
            config=str(self._path),
            sources=[s.name for s in new.sources],
            instance=instance_name(new),
        )
        self._notifier.ready(status=self._serving_status())

    async def _audit_reload(self, old: Config, new: Config) -> None:
        """Record the reload: which parts of the config changed, never their values."""
        from monitor.audit import AuditLog
        from monitor.web.keys import CLOCK, STORE

        assert self._runner is not None
        app = self._runner.app
        before, after = {s.name for s in old.sources}, {s.name for s in new.sources}
        detail = {
            "changed": [n for n in type(new).model_fields if getattr(new, n) != getattr(old, n)],
            "sources_added": sorted(after - before),
            "sources_removed": sorted(before - after),
        }
        try:
            await AuditLog(app[STORE]).record(
                at=app[CLOCK].now(),
                actor="operator",
                via="system",
                action="config_reload",
                origin=socket.gethostname(),
                detail=detail,
            )
        except Exception:  # the reload is done; a store that cannot take the entry says so
            log.exception("reload not recorded in the audit")

    async def _start(self, config: Config) -> web.AppRunner:
        # Header and idle timeouts, size limits and the connection cap: monitor/web/server.py.
        runner = make_runner(self._build(config), shutdown_timeout=self._shutdown_timeout)
        try:
            await runner.setup()  # every cleanup_ctx up: migrations, state, polling
            # The site closes the socket it is given when it stops; a duplicate keeps the
            # original (and its backlog of waiting connections) for the next generation.
            await start_sites(
                runner, sockets=[sock.dup() for sock in self._sockets], backlog=LISTEN_BACKLOG
            )
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    def _create_app(self, config: Config) -> web.Application:
        from monitor.app import create_app
        from monitor.web.keys import METRICS

        app = create_app(config, metrics=self._metrics)
        self._metrics = app[METRICS]
        return app

    def _serving_status(self) -> str:
        return f"serving {counted(len(self._config.sources), 'source')} from {self._path}"


def serve_reloadable(path: str | Path, config: Config, overrides: Overrides | None = None) -> None:
    """Run the service until SIGTERM/SIGINT; SIGHUP reloads the config file (`overrides`, the
    command line's, apply to it each time)."""

    async def main() -> None:
        runner = ServiceRunner(path, config, overrides=overrides)
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: runner.request_stop,
            signal.SIGINT: runner.request_stop,
            signal.SIGHUP: runner.request_reload,
        }
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        try:
            await runner.run()
        except (ListenError, StoreInUse):
            raise  # the operator's one line, said by the command line
        except Exception:
            log.exception("service failed")
            raise SystemExit(1) from None
        finally:
            for signum in handlers:
                loop.remove_signal_handler(signum)

    asyncio.run(main())


def _configure_logging(config: Config, *, extra_secrets: list[str] | None = None) -> None:
    secrets = config.secrets() + (extra_secrets or [])
    configure_logging(level=config.log.level, fmt=config.log.format, secrets=secrets)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
