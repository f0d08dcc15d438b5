"""systemd's notify protocol (sd_notify(3)), spoken directly: one datagram per state change."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

from monitor.logging import get_logger

log = get_logger("monitor.systemd_notify")

# A full receive queue on systemd's side must never stall the event loop for long.
SEND_TIMEOUT_SECONDS = 1.0


def socket_address(value: str) -> str | bytes | None:
    """$NOTIFY_SOCKET as an AF_UNIX address: a path, or '@name' for the abstract namespace."""
    if value.startswith("@"):
        # Linux abstract socket: a leading NUL byte instead of the '@' systemd writes.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # e.g. "vsock:..." (systemd in a VM): not used by this service's deployments


class SystemdNotifier:
    """Tells systemd about readiness, reloads, stopping and liveness; a no-op outside systemd."""

    def __init__(self, address: str | bytes | None, *, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, pid: int | None = None
    ) -> SystemdNotifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID as systemd sets them."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("unsupported NOTIFY_SOCKET address; not notifying systemd", address=raw)
        watchdog: int | None = None
        usec = env.get("WATCHDOG_USEC", "")
        # WATCHDOG_PID names the process the watchdog is meant for; a child that inherited the
        # environment must not feed it (sd_watchdog_enabled(3)).
        owner = env.get("WATCHDOG_PID", "")
        mine = not owner or owner == str(os.getpid() if pid is None else pid)
        if usec.isdigit() and int(usec) > 0 and mine:
            watchdog = int(usec)
        return cls(address, watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half the timeout, as sd_watchdog_enabled advises."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` lines as one datagram; False (logged) when it could not be sent."""
        if self._address is None:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.settimeout(SEND_TIMEOUT_SECONDS)
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as err:
            log.warning("systemd notification failed", fields=list(fields), error=str(err))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1: startup (or a reload) is complete and the service is serving."""
        return self.notify("READY=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        """RELOADING=1 with the monotonic timestamp systemd matches the reload against."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: shutdown has begun."""
        return self.notify("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        """WATCHDOG=1: the event loop is alive."""
        return self.notify("WATCHDOG=1")

    async def feed_watchdog(self) -> None:
        """Ping the watchdog forever; a stuck event loop stops the pings and systemd restarts us."""
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    def close(self) -> None:
        """Close the datagram socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status(status: str | None) -> tuple[str, ...]:
    # STATUS= is a single line shown by `systemctl status`.
    return () if status is None else (f"STATUS={' '.join(status.split())}",)
