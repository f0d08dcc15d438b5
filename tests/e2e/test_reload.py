"""Reload (SIGHUP) and systemd's notify protocol: a changed config is applied, a broken one refused.

The subprocess test runs `webcare-monitor run` as systemd would: NOTIFY_SOCKET points at a
datagram socket this test listens on, WATCHDOG_USEC asks for pings, and SIGHUP is what
`ExecReload=kill -HUP $MAINPID` sends. The in-process tests look inside the rebuilt service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.audit import AuditLog
from monitor.config import Config, load_config
from monitor.reload import ServiceRunner
from monitor.simulator.graph_api import FakeGraphApi
from monitor.systemd_notify import SystemdNotifier
from monitor.web.keys import CONFIG, COORDINATOR, METRICS, STORE
from tests.e2e.conftest import PAGE_ID, TOKEN
from tests.e2e.test_restart import free_port, wait_for

SECOND_PAGE = "555000222"


def config_text(
    *,
    api: str,
    db: Path,
    port: int,
    office: str = "60m",
    poll: str = "60s",
    second_page: bool = False,
    broken: bool = False,
) -> str:
    """One Facebook page, optionally a second one; `broken` adds two mistakes."""
    text = f"""
database_url = "sqlite+aiosqlite:///{db.as_posix()}"
[http]
host = "127.0.0.1"
port = {port}
[policies.default]
office_hours = "{office}"
after_hours = "30m"
[[sources]]
type = "facebook_page"
name = "acme-fb"
brand = "acme"
page_id = "{PAGE_ID}"
access_token = "{TOKEN}"
api_base_url = "{api}"
poll_interval = "{poll}"
request_timeout = "2s"
"""
    if second_page:
        text += f"""
[[sources]]
type = "facebook_page"
name = "acme-be-fb"
brand = "acme"
page_id = "{SECOND_PAGE}"
access_token = "{TOKEN}"
api_base_url = "{api}"
poll_interval = "{poll}"
request_timeout = "2s"
"""
    if broken:
        text += """
[[sources]]
type = "facebook_page"
name = "acme-broken"
brand = "acme"
page_id = "1"
access_token = "x"
policy = "no-such-policy"
poll_interval = "soon"
"""
    return text


class NotifyListener:
    """Stands in for systemd: a datagram socket whose messages are parsed into dicts."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.received: list[dict[str, str]] = []

    async def next(self, within: float = 30) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), within)
        message = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.received.append(message)
        return message

    async def until(self, key: str, within: float = 30) -> list[dict[str, str]]:
        """Messages up to and including the first one carrying `key`, watchdog pings aside."""
        seen = []
        while True:
            message = await self.next(within)
            if message != {"WATCHDOG": "1"}:
                seen.append(message)
            if key in message:
                return seen


async def metric_sources(port: int) -> dict[str, set[str]]:
    """Per metric family, the `source` labels present (empty dict when not reachable)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            text = await response.text()
    except aiohttp.ClientError:
        return {}
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set())
            if "source" in sample.labels:
                found[sample.name].add(sample.labels["source"])
            if "le" in sample.labels:
                found[sample.name].add("le=" + sample.labels["le"])
    return found


async def refusals(port: int, expect: float, times: int = 0) -> float:
    """Ask the disabled API `times` times; then webcare_http_rejected_total summed, once it
    equals `expect` or after 10 s (/metrics serves a rendering up to a second old)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(times):
            async with session.get(f"http://127.0.0.1:{port}/api/v1/report") as response:
                assert 400 <= response.status < 500
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            total = sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "webcare_http_rejected_total"
            )
            if total == expect or asyncio.get_running_loop().time() > deadline:
                return total
            await asyncio.sleep(0.2)


@pytest.fixture
async def two_pages(graph: FakeGraphApi) -> FakeGraphApi:
    graph.add_page(SECOND_PAGE, "Acme BE")
    now = datetime.now(UTC)
    graph.add_post(created_time=now - timedelta(minutes=30), message="Hello NL")
    return graph


async def test_sighup_applies_a_changed_config_and_refuses_a_broken_one_under_notify(
    two_pages: FakeGraphApi, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "webcare-monitor.toml"
    db = tmp_path / "monitor.db"
    config.write_text(config_text(api=two_pages.base_url, db=db, port=port), encoding="utf-8")
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    log = tmp_path / "service.log"
    service = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "monitor", "run", "-c", str(config)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log.open("ab"),
        # 0.4 s watchdog: pings every 0.2 s, so a few arrive during the test.
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
            "WATCHDOG_USEC": "400000",
        },
    )
    try:
        startup = await listener.until("READY")
        assert startup[-1]["READY"] == "1"
        assert "1 source from" in startup[-1]["STATUS"]
        # Readiness is announced only once the HTTP site answers.
        assert "acme-fb" in (await metric_sources(port))["webcare_source_up"]
        pings = 0
        while pings < 3:
            pings += (await listener.next()) == {"WATCHDOG": "1"}
        # A counter with a value: three refused requests.
        assert await refusals(port, 3, times=3) == 3

        # A second page and a new office-hours target (45 min = 2700 s, a histogram bucket).
        config.write_text(
            config_text(api=two_pages.base_url, db=db, port=port, office="45m", second_page=True),
            encoding="utf-8",
        )
        service.send_signal(signal.SIGHUP)
        reload = await listener.until("READY")
        assert "RELOADING" in reload[0] and int(reload[0]["MONOTONIC_USEC"]) > 0
        assert "2 sources from" in reload[-1]["STATUS"]

        async def applied() -> bool:
            found = await metric_sources(port)
            return (
                "acme-be-fb" in found.get("webcare_source_up", set())
                and "le=2700.0" in found.get("webcare_first_response_sla_seconds_bucket", set())
                and "acme-be-fb" in found.get("webcare_last_successful_poll_timestamp_seconds", ())
            )

        await wait_for(applied, "the new config in /metrics", within=20)
        # The reload kept the counters: the three refusals are still counted, not reset to 0.
        assert await refusals(port, 3) == 3

        # A broken file: refused, every problem logged, the applied config keeps serving.
        config.write_text(
            config_text(api=two_pages.base_url, db=db, port=port, second_page=True, broken=True),
            encoding="utf-8",
        )
        service.send_signal(signal.SIGHUP)
        refused = await listener.until("READY")
        assert "RELOADING" in refused[0]
        assert refused[-1]["STATUS"].startswith("reload refused: 2 problems")
        assert "2 sources from" in refused[-1]["STATUS"]
        assert service.returncode is None
        found = await metric_sources(port)
        assert found["webcare_source_up"] == {"acme-fb", "acme-be-fb"}
        assert "le=2700.0" in found["webcare_first_response_sla_seconds_bucket"]
        output = log.read_text()
        assert "reload refused" in output
        assert "sources[2].policy: unknown policy 'no-such-policy'" in output
        assert "sources[2].poll_interval" in output
    finally:
        service.send_signal(signal.SIGTERM)
        await asyncio.wait_for(service.wait(), 20)
    stopping = await listener.until("STOPPING")
    assert stopping[-1]["STOPPING"] == "1"
    listener.sock.close()
    output = log.read_text()
    assert service.returncode == 0, output[-3000:]
    assert '"event":"reloaded"' in output
    assert TOKEN not in output


@contextlib.asynccontextmanager
async def running(path: Path, config: Config) -> AsyncIterator[ServiceRunner]:
    """A ServiceRunner in this event loop, without signals or a notify socket."""
    runner = ServiceRunner(path, config, notifier=SystemdNotifier(None))
    started = asyncio.Event()
    task = asyncio.create_task(runner.run(started=started.set))
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        yield runner
    finally:
        runner.request_stop()
        await task


async def reload_and_wait(runner: ServiceRunner) -> None:
    done = runner.reloads + 1
    runner.request_reload()

    async def finished() -> bool:
        return runner.reloads >= done

    await wait_for(finished, "the reload", within=20)


async def scrape_up(runner: ServiceRunner) -> set[str]:
    port = runner.addresses[0][1]
    return (await metric_sources(port)).get("webcare_source_up", set())


async def test_reload_rebuilds_sources_with_the_new_poll_interval(
    two_pages: FakeGraphApi, tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    db = tmp_path / "m.db"
    path.write_text(config_text(api=two_pages.base_url, db=db, port=0), encoding="utf-8")
    async with running(path, load_config(path)) as runner:
        first = runner.app
        assert first[COORDINATOR].sources["acme-fb"].interval == 60
        sockets = runner.addresses
        path.write_text(
            config_text(api=two_pages.base_url, db=db, port=0, poll="15s", second_page=True),
            encoding="utf-8",
        )
        await reload_and_wait(runner)
        assert runner.app is not first
        assert runner.app[METRICS] is first[METRICS]  # the same instruments go on counting
        assert runner.addresses == sockets  # same listening socket, same port
        intervals = {n: s.interval for n, s in runner.app[COORDINATOR].sources.items()}
        assert intervals == {"acme-fb": 15, "acme-be-fb": 15}
        assert await scrape_up(runner) == {"acme-fb", "acme-be-fb"}

        # Unchanged file: nothing is rebuilt.
        current = runner.app
        await reload_and_wait(runner)
        assert runner.app is current

        # The reload that took effect is in the audit once, naming what changed, no values.
        entries = await AuditLog(runner.app[STORE]).entries(action="config_reload")
        assert [(e.actor, e.via) for e in entries] == [("operator", "system")]
        assert "acme-be-fb" in str(entries[0].detail)
        assert "token" not in str(entries[0].detail).lower()


async def test_a_config_that_cannot_start_is_rolled_back(
    two_pages: FakeGraphApi, tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    db = tmp_path / "m.db"
    path.write_text(config_text(api=two_pages.base_url, db=db, port=0), encoding="utf-8")
    config = load_config(path)
    async with running(path, config) as runner:
        # Valid, but its database cannot be opened: startup fails, the old config comes back.
        unreachable = tmp_path / "missing-dir" / "m.db"
        path.write_text(
            config_text(api=two_pages.base_url, db=unreachable, port=0, second_page=True),
            encoding="utf-8",
        )
        await reload_and_wait(runner)
        assert runner.config == config
        assert runner.app[CONFIG] == config
        assert await scrape_up(runner) == {"acme-fb"}


async def test_requests_during_a_reload_wait_instead_of_failing(
    two_pages: FakeGraphApi, tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    db = tmp_path / "m.db"
    path.write_text(config_text(api=two_pages.base_url, db=db, port=0), encoding="utf-8")
    async with running(path, load_config(path)) as runner:
        port = runner.addresses[0][1]
        statuses: list[int] = []

        async def hammer(stop: Callable[[], bool]) -> None:
            async with aiohttp.ClientSession() as session:
                while not stop():
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        statuses.append(response.status)

        done = False
        task = asyncio.create_task(hammer(lambda: done))
        for poll in ("20s", "30s"):
            await asyncio.sleep(0.05)
            path.write_text(
                config_text(api=two_pages.base_url, db=db, port=0, poll=poll), encoding="utf-8"
            )
            await reload_and_wait(runner)
        done = True
        await task  # a refused connection or a reset would have raised here
        assert statuses and set(statuses) == {200}


async def test_counters_go_on_across_reloads_and_removed_sources_leave_metrics(
    two_pages: FakeGraphApi, tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    db = tmp_path / "m.db"
    path.write_text(
        config_text(api=two_pages.base_url, db=db, port=0, second_page=True), encoding="utf-8"
    )
    async with running(path, load_config(path)) as runner:
        port = runner.addresses[0][1]
        assert await refusals(port, 2, times=2) == 2
        assert await scrape_up(runner) == {"acme-fb", "acme-be-fb"}

        # The second page goes: its series leave /metrics, the counters stay.
        path.write_text(config_text(api=two_pages.base_url, db=db, port=0), encoding="utf-8")
        await reload_and_wait(runner)
        assert await refusals(port, 2) == 2
        found = await metric_sources(port)
        assert found["webcare_source_up"] == {"acme-fb"}
        assert not [name for name, sources in found.items() if "acme-be-fb" in sources]

        # A target that is no bucket yet (50 min): the SLA response-time histogram starts again
        # with it among its buckets; the other counters still go on.
        path.write_text(
            config_text(api=two_pages.base_url, db=db, port=0, office="50m"), encoding="utf-8"
        )
        await reload_and_wait(runner)
        found = await metric_sources(port)
        assert "le=3000.0" in found["webcare_first_response_sla_seconds_bucket"]
        assert await refusals(port, 3, times=1) == 3
