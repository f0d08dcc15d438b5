"""The sd_notify datagrams, checked against a socket standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.systemd_notify import SystemdNotifier, socket_address


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        yield path, sock


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_environ({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval is None
    asyncio.run(notifier.feed_watchdog())  # returns at once


def test_lifecycle_messages_reach_a_path_socket(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.ready(status="serving 2 source(s)\nfrom x")
    assert receive(sock) == ["READY=1", "STATUS=serving 2 source(s) from x"]
    assert notifier.reloading()
    reloading = receive(sock)
    assert reloading[0] == "RELOADING=1"
    key, _, usec = reloading[1].partition("=")
    assert key == "MONOTONIC_USEC" and int(usec) > 0
    assert notifier.stopping()
    assert receive(sock) == ["STOPPING=1"]
    assert notifier.watchdog()
    assert receive(sock) == ["WATCHDOG=1"]
    notifier.close()


def test_abstract_namespace_address() -> None:
    name = f"webcare-test-{uuid.uuid4().hex}"
    assert socket_address("@" + name) == b"\0" + name.encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert receive(sock) == ["READY=1"]
        notifier.close()


def test_unsupported_address_disables_notification() -> None:
    assert socket_address("vsock:2:1234") is None
    assert not SystemdNotifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.ready() is False


def test_watchdog_interval_is_half_the_timeout_and_only_for_its_pid(
    listener: tuple[str, socket.socket],
) -> None:
    path, _ = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}
    assert SystemdNotifier.from_environ(env).watchdog_interval == 15.0
    mine = {**env, "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier.from_environ(mine).watchdog_interval == 15.0
    # Meant for another process (we inherited the environment): not ours to feed.
    theirs = {**env, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert SystemdNotifier.from_environ(theirs).watchdog_interval is None
    assert SystemdNotifier.from_environ({**env, "WATCHDOG_USEC": "0"}).watchdog_interval is None


async def test_feed_watchdog_pings_until_cancelled(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    sock.setblocking(False)
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})
    task = asyncio.create_task(notifier.feed_watchdog())
    loop = asyncio.get_running_loop()
    for _ in range(3):
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)
        assert data == b"WATCHDOG=1"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    notifier.close()
