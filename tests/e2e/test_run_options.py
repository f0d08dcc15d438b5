"""`run --instance NAME --port PORT`: several instances on one host share one config file.

The options hold over the file's `[cluster] instance` and `[http] port`, and go on holding
after a SIGHUP re-reads the file; without them the name comes from the file, then
$WEBCARE_INSTANCE, then the host name.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp

from monitor.config import load_config
from monitor.reload import Overrides, ServiceRunner
from monitor.simulator.graph_api import FakeGraphApi
from monitor.systemd_notify import SystemdNotifier
from monitor.web.keys import CONFIG, COORDINATOR
from tests.e2e.test_reload import config_text, metric_sources, reload_and_wait
from tests.e2e.test_restart import free_port


def with_instance(text: str, instance: str) -> str:
    return text + f'\n[cluster]\ninstance = "{instance}"\n'


def events(log: Path, event: str) -> list[dict[str, object]]:
    """The JSON log lines of `event` written so far."""
    return [
        json.loads(line)
        for line in log.read_text(encoding="utf-8").splitlines()
        if line.startswith("{") and f'"event":"{event}"' in line
    ]


async def log_event(log: Path, event: str, within: float = 30) -> dict[str, object]:
    """The first JSON log line of `event`, once it is written."""
    deadline = asyncio.get_running_loop().time() + within
    while not (found := events(log, event)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {event!r} line:\n{tail(log)}")
        await asyncio.sleep(0.1)
    return found[0]


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(encoding="utf-8")[-chars:]


async def healthy(port: int) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def test_instance_and_port_from_the_command_line_survive_sighup(
    graph: FakeGraphApi, tmp_path: Path
) -> None:
    graph.add_page("555000222", "Acme BE")
    port, file_port = free_port(), free_port()
    config = tmp_path / "shared.toml"
    db = tmp_path / "m.db"
    text = config_text(api=graph.base_url, db=db, port=file_port)
    config.write_text(with_instance(text, "from-the-file"), encoding="utf-8")
    log = tmp_path / "service.log"
    service = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "monitor", "run", "-c", str(config), "--instance", "web-1", "--port", str(port)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log.open("ab"),
        env={**os.environ, "PYTHONUNBUFFERED": "1", "WEBCARE_INSTANCE": "from-env"},
    )
    try:
        listening = await log_event(log, "listening")
        assert listening["urls"] == [f"http://127.0.0.1:{port}"]
        assert listening["instance"] == "web-1"
        assert await healthy(port) and not await healthy(file_port)

        # The file changes its port and instance name and gains a source: the source comes,
        # the command line's name and port stay.
        text = config_text(api=graph.base_url, db=db, port=free_port(), second_page=True)
        config.write_text(with_instance(text, "renamed-in-the-file"), encoding="utf-8")
        service.send_signal(signal.SIGHUP)
        reloaded = await log_event(log, "reloaded")
        assert reloaded["instance"] == "web-1"
        assert reloaded["sources"] == ["acme-fb", "acme-be-fb"]
        assert "acme-be-fb" in (await metric_sources(port))["webcare_source_up"]
        # The port did not "change", so there is no take-effect-at-restart warning either.
        assert "take effect at the next restart" not in tail(log, chars=10**7)
    finally:
        service.send_signal(signal.SIGTERM)
        await asyncio.wait_for(service.wait(), 30)
    assert service.returncode == 0, tail(log)


async def test_without_the_option_or_the_file_webcare_instance_names_it(
    graph: FakeGraphApi, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(config_text(api=graph.base_url, db=tmp_path / "m.db", port=0), "utf-8")
    log = tmp_path / "service.log"
    service = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "monitor", "run", "-c", str(config), "--port", str(port)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log.open("ab"),
        env={**os.environ, "PYTHONUNBUFFERED": "1", "WEBCARE_INSTANCE": "host-a-2"},
    )
    try:
        listening = await log_event(log, "listening")
        assert listening["instance"] == "host-a-2"
        assert listening["urls"] == [f"http://127.0.0.1:{port}"]
    finally:
        service.send_signal(signal.SIGTERM)
        await asyncio.wait_for(service.wait(), 30)
    assert service.returncode == 0, tail(log)


async def test_a_reloaded_service_is_built_from_the_file_with_the_overrides(
    graph: FakeGraphApi, tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    db = tmp_path / "m.db"
    path.write_text(config_text(api=graph.base_url, db=db, port=free_port()), encoding="utf-8")
    overrides = Overrides(instance="web-2", port=0)
    runner = ServiceRunner(
        path, load_config(path), notifier=SystemdNotifier(None), overrides=overrides
    )
    started = asyncio.Event()
    task = asyncio.create_task(runner.run(started=started.set))
    await asyncio.wait_for(started.wait(), 30)
    try:
        sockets = runner.addresses
        assert runner.app[CONFIG].cluster.instance == "web-2"
        assert runner.app[CONFIG].http.port == 0
        path.write_text(
            with_instance(
                config_text(api=graph.base_url, db=db, port=free_port(), poll="15s"), "other"
            ),
            encoding="utf-8",
        )
        await reload_and_wait(runner)
        built = runner.app[CONFIG]
        assert (built.cluster.instance, built.http.port) == ("web-2", 0)
        assert runner.config == built
        assert runner.app[COORDINATOR].sources["acme-fb"].interval == 15  # the file's change
        assert runner.addresses == sockets
        # Re-reading the same file with the same options is no change: nothing is rebuilt.
        current = runner.app
        await reload_and_wait(runner)
        assert runner.app is current
    finally:
        runner.request_stop()
        await task
