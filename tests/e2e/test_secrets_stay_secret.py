"""The roster's .ics URL and every receiver URL are secrets: their tokens reach no log line,
no error, no HTTP answer and no command output, whether given inline or as `*_file`."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.alerts.ics import IcsError, fetch_ics
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import ConfigError, load_config
from monitor.logging import configure_logging
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import ALERTS
from tests.e2e.conftest import settle, write_config
from tests.e2e.test_alerts import T0

# Shaped like Google Calendar's "secret address in iCal format", plus a ?token= for good measure.
ICS_TOKEN = "private-7f3e9a1c5b2d4e6f8a0b"
ICS_QUERY_TOKEN = "Ics-query-tok-4d2c"
# Shaped like a Slack hook: the last path segment is the credential.
HOOK_TOKEN = "XXhookTOKEN9b8a7c6d5e4fXX"
TOKENS = (ICS_TOKEN, ICS_QUERY_TOKEN, HOOK_TOKEN)
SHIFTS = """
[[roster.shifts]]
when = "mon-sun 00:00-24:00"
student = "night-nina"
"""


def ics_url(base: str) -> str:
    return f"{base}/calendar/ical/team/{ICS_TOKEN}/basic.ics?token={ICS_QUERY_TOKEN}"


def hook_url(base: str) -> str:
    return f"{base}/services/T0CRED/B0CRED/{HOOK_TOKEN}"


def assert_no_token(text: str, where: str) -> None:
    for token in TOKENS:
        assert token not in text, f"{token!r} in {where}:\n{text}"


@pytest.fixture
async def calendar(aiohttp_server: Any) -> str:
    """A calendar server that only redirects to itself: aiohttp's TooManyRedirects quotes
    the (token-bearing) URL it gave up on."""

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.rel_url))

    app = web.Application()
    app.router.add_get("/{tail:.*}", loop)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def run_cli(*args: str) -> tuple[int, str]:
    """The command in a child process (the test's loop keeps serving the calendar meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_check_config_and_roster_never_show_the_ics_or_receiver_tokens(
    graph: FakeGraphApi, tmp_path: Path, calendar: str
) -> None:
    # Good: the .ics URL and the hook URL come from *_file secrets.
    (tmp_path / "roster-ics-url").write_text(ics_url(calendar) + "\n", encoding="utf-8")
    (tmp_path / "slack-url").write_text(hook_url(calendar) + "\n", encoding="utf-8")
    good = write_config(
        tmp_path / "good.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db",
        extra=(
            '[roster]\nics_file = "roster-ics-url"\n'
            + SHIFTS
            + '[[receivers]]\nname = "team-slack"\ntype = "slack"\nurl_file = "slack-url"\n'
        ),
    )
    config = load_config(good)
    assert config.roster.ics == ics_url(calendar)
    secrets = config.secrets()
    assert {ICS_TOKEN, ICS_QUERY_TOKEN, HOOK_TOKEN} <= set(secrets)

    code, output = await run_cli("check-config", "-c", str(good))
    assert (code, output.strip()) == (0, f"{good}: OK (1 source: acme-fb)")

    # `roster` reads the .ics, which fails: a warning that names only scheme and host.
    code, output = await run_cli("roster", "-c", str(good), "--at", "2026-10-25 12:00")
    assert code == 0, output
    assert "warning: .ics http://127.0.0.1/… not used: cannot fetch" in output
    assert_no_token(output, "`roster` output")

    # Broken: inline secrets, and mistakes next to them and elsewhere.
    broken = write_config(
        tmp_path / "broken.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db",
        poll_interval="soon",
        extra=(
            f'[roster]\nics = "{ics_url(calendar)}"\nics_refresh = "often"\n'
            + SHIFTS
            + f'[[receivers]]\nname = "team-slack"\ntype = "slack"\nurl = "{hook_url(calendar)}"\n'
            + "kinds = ['warning', 'panic']\n"
            + f'[[receivers]]\nname = "old-hook"\ntype = "webhook"\nurl = "{hook_url(calendar)}"\n'
            + f'secret = "{HOOK_TOKEN}"\n'
            + '[[receivers]]\nname = "ftp"\ntype = "webhook"\n'
            + f'url = "ftp://127.0.0.1/{HOOK_TOKEN}"\n'
        ),
    )
    code, output = await run_cli("check-config", "-c", str(broken))
    assert code == 1
    assert "5 problems in the config" in output
    assert "roster.ics_refresh: invalid duration 'often'" in output
    assert "receivers[1]: the secret does not start with whsec_" in output
    assert "receivers[2].url: must be an http:// or https:// URL" in output
    assert_no_token(output, "check-config output")

    # The same problems as the exception carries them (what `run` and a reload print).
    with pytest.raises(ConfigError) as info:
        load_config(broken)
    assert_no_token(str(info.value), "the ConfigError")


async def test_the_service_logs_a_failing_ics_without_its_token(
    graph: FakeGraphApi, tmp_path: Path, calendar: str, aiohttp_client: Any
) -> None:
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db",
        extra=(
            f'[roster]\nics = "{ics_url(calendar)}"\n'
            + SHIFTS
            + f'[[receivers]]\nname = "team-slack"\ntype = "slack"\nurl = "{hook_url(calendar)}"\n'
        ),
    )
    config = load_config(path)
    logs = io.StringIO()
    # As `run` does (configure_from): the config's secrets are redacted; debug shows the most.
    configure_logging(level="debug", fmt="json", secrets=config.secrets(), stream=logs)

    app = create_app(config, clock=FakeClock(T0), start_polling=False)
    client = await aiohttp_client(app)
    ics = app[ALERTS].ics
    assert ics is not None
    await settle(lambda: ics.failing, "the first .ics refresh failed")
    await settle(lambda: "roster .ics unreadable" in logs.getvalue(), "the warning")
    answers = [await (await client.get(p)).text() for p in ("/readyz", "/healthz", "/metrics")]
    await app.shutdown()
    await app.cleanup()

    line = next(x for x in logs.getvalue().splitlines() if "roster .ics unreadable" in x)
    assert '"source":"http://127.0.0.1/…"' in line
    assert "cannot fetch http://127.0.0.1/…: TooManyRedirects: " in line
    assert_no_token(logs.getvalue(), "the service's log")
    assert_no_token("\n".join(answers), "the HTTP answers")

    # The error text itself is clean, before any redactor: it may also reach stderr or a
    # reload's answer.
    async with aiohttp.ClientSession() as session:
        with pytest.raises(IcsError) as failed:
            await fetch_ics(ics_url(calendar), session, timeout=5)
        assert failed.value.__cause__ is None
    assert "http://127.0.0.1/…" in str(failed.value)
    assert_no_token(str(failed.value), "the IcsError")
