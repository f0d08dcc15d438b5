"""Logs hold no consumer data (docs/data-protection.md), end to end, at the debug level.

The real service (`python -m monitor run`, log level debug, JSON to stderr) polls the fake
Graph API every second and takes a signed Facebook webhook; a consumer with a distinctive
name, id and text posts two comments (one polled, one delivered by webhook); a 3 s target
makes warnings, breaches and reminders go to a console receiver (stdout), a webhook receiver
and a receiver that refuses every alert with a 422 quoting the item it choked on (what a
strict schema check answers). Then `privacy erase --author NAME` runs while the service goes
on polling the same thread and takes the same webhook again. Checked:

1. no structured log line (stderr) ever holds the consumer's name, platform id or text;
2. after the erasure no new line of any kind (log or console alert) and no new webhook
   alert names the person or quotes their text.

The console receiver's alert lines (stdout) are the team's view of what waits, so they do
name the consumer before the erasure; they are told apart from the log by their stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from monitor.simulator.graph_api import FakeGraphApi
from tests.e2e.conftest import PAGE_ID, TOKEN
from tests.e2e.test_alerts import SECRET as RECEIVER_SECRET
from tests.e2e.test_restart import free_port

NAME = "Zelda Quintanilla-Vock"
AUTHOR_ID = "90417730055123"
POLLED_TEXT = "my parcel 77Q-ZX never came, call 0612345678"
HOOKED_TEXT = "still nothing for parcel 77Q-ZX, Vrijheidslaan 88"
# What must never reach a log line: whole values and the parts that identify on their own.
NEEDLES = (
    NAME,
    "Quintanilla",
    AUTHOR_ID,
    POLLED_TEXT,
    HOOKED_TEXT,
    "77Q-ZX",
    "0612345678",
    "Vrijheidslaan",
)
# Real deadlines and escalations on the wall clock: tests/conftest.py's WALL_CLOCK_HEAVY runs
# it one after another with the other such tests.

APP_SECRET = "privacy-logs-app-secret-5150"
TARGET_S = 3
# A loaded 2-core runner: generous waits, each ends as soon as its condition holds.
WAIT_S = 20


class Receivers:
    """A webhook receiver that accepts, and one that refuses quoting the item it choked on."""

    def __init__(self) -> None:
        self.accepted: list[tuple[float, dict[str, Any]]] = []
        self.refused = 0

    async def accept(self, request: web.Request) -> web.Response:
        self.accepted.append((time.monotonic(), await request.json()))
        return web.Response(text="ok")

    async def refuse(self, request: web.Request) -> web.Response:
        self.refused += 1
        body = await request.json()
        item = (body.get("items") or [{}])[0]
        answer = {"error": "unknown field in items[0]", "item": item}
        return web.json_response(answer, status=422)

    def kinds(self) -> list[str]:
        return [body["kind"] for _, body in self.accepted]


def config_text(*, graph_url: str, db: Path, port: int, good: str, bad: str) -> str:
    return f"""
database_url = "sqlite+aiosqlite:///{db}"
[log]
level = "debug"
format = "json"
[http]
port = {port}
[facebook_webhook]
app_secret = "{APP_SECRET}"
verify_token = "privacy-logs-verify"
[policies.default]
office_hours = "{TARGET_S}s"
after_hours = "{TARGET_S}s"
warn_at = 0.5
coverage = "always"
[alerts]
escalate_after = "2s"
remind_every = "2s"
handover = "off"
[roster]
timezone = "Europe/Amsterdam"
lead = "lead-lisa"
[[roster.shifts]]
when = "mon-sun 00:00-24:00"
student = "sam"
backup = "bram"
[[receivers]]
name = "team-console"
type = "console"
[[receivers]]
name = "team-hook"
type = "webhook"
url = "{good}"
secret = "{RECEIVER_SECRET}"
timeout = "5s"
[[receivers]]
name = "strict-hook"
type = "webhook"
url = "{bad}"
secret = "{RECEIVER_SECRET}"
timeout = "5s"
[[sources]]
type = "facebook_page"
name = "acme-fb"
brand = "acme"
page_id = "{PAGE_ID}"
access_token = "{TOKEN}"
api_base_url = "{graph_url}"
poll_interval = "1s"
request_timeout = "2s"
"""


def delivery(comment_id: str, post_id: str, at: datetime) -> bytes:
    value = {
        "item": "comment",
        "verb": "add",
        "post_id": post_id,
        "comment_id": comment_id,
        "parent_id": post_id,
        "from": {"id": AUTHOR_ID, "name": NAME},
        "created_time": int(at.timestamp()),
        "message": HOOKED_TEXT,
    }
    entry = {
        "id": PAGE_ID,
        "time": int(at.timestamp()),
        "changes": [{"field": "feed", "value": value}],
    }
    return orjson.dumps({"object": "page", "entry": [entry]})


async def post_webhook(port: int, body: bytes) -> int:
    digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/webhooks/facebook", data=body, headers=headers) as r,
    ):
        return r.status


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def leaks(text: str) -> list[str]:
    """The lines of `text` that hold any of NEEDLES."""
    return [line for line in text.splitlines() if any(n in line for n in NEEDLES)]


def tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


async def until(condition: Any, what: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the log ends:\n{tail(log)}")
        await asyncio.sleep(0.1)


async def erase(config: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "monitor", "privacy", "erase", "-c", str(config), "--author", NAME),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_no_log_line_names_a_consumer_and_nothing_new_names_them_after_erasure(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_server: Any
) -> None:
    started = time.monotonic()
    receivers = Receivers()
    hooks = web.Application()
    hooks.router.add_post("/ok", receivers.accept)
    hooks.router.add_post("/strict", receivers.refuse)
    hook_server = await aiohttp_server(hooks)
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(
        config_text(
            graph_url=graph.base_url,
            db=tmp_path / "m.db",
            port=port,
            good=str(hook_server.make_url("/ok")),
            bad=str(hook_server.make_url("/strict")),
        ),
        encoding="utf-8",
    )
    post = graph.add_post(created_time=datetime.now(UTC) - timedelta(hours=1), message="Sale!")
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.log"

    def log() -> str:
        return err.read_text(encoding="utf-8", errors="replace")

    def alerts() -> str:
        return out.read_text(encoding="utf-8", errors="replace")

    with out.open("wb") as stdout, err.open("wb") as stderr:
        service = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "monitor", "run", "-c", str(config)),
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        await until(lambda: '"event":"poll"' in log(), "the first poll", err)
        # Comments from before tracking started are never alerted on; the Graph API gives
        # whole seconds, so they are written in the next second.
        await asyncio.sleep(1.05 - time.time() % 1)
        now = datetime.now(UTC)
        graph.add_comment(
            post_id=post, created_time=now, message=POLLED_TEXT, author=(AUTHOR_ID, NAME)
        )
        hooked = graph.add_comment(
            post_id=post, created_time=now, message=HOOKED_TEXT, author=(AUTHOR_ID, NAME)
        )
        body = delivery(hooked, post, now)
        assert await post_webhook(port, body) == 200

        # Both items reach the team by name: the data really went through the service.
        def named_in_breach() -> bool:
            return any(
                sent["kind"] == "breach"
                and len(sent["items"]) == 2
                and all(i["author"] == NAME for i in sent["items"])
                for _, sent in receivers.accepted
            )

        await until(named_in_breach, "a breach naming both items", err)
        await until(lambda: receivers.refused >= 1, "the strict receiver's refusal", err)
        await until(lambda: NAME in alerts() and POLLED_TEXT in alerts(), "a console alert", err)
        await until(lambda: "alert receiver failing" in log(), "the refusal's log line", err)

        said = await erase(config)
        assert said.startswith("erased 2 messages"), said
        # From here on (an alert read from the outbox just before would still name them).
        log_mark, alert_mark, erased_at = len(log()), len(alerts()), time.monotonic()
        # The same thread is polled again (every second) and the same webhook comes again,
        # as Facebook redelivers; reminders and escalations go on for the waiting items.
        assert await post_webhook(port, body) == 200
        polls_before = log()[log_mark:].count('"event":"poll"')
        await until(
            lambda: log()[log_mark:].count('"event":"poll"') >= polls_before + 2,
            "two polls after the erasure",
            err,
        )
        reminders = len(receivers.accepted)
        await until(lambda: len(receivers.accepted) > reminders, "an alert after the erasure", err)
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(service.wait(), 20)
        except TimeoutError:
            service.kill()
            await service.wait()

    everything = log()
    lines = json_lines(everything)
    assert lines, everything[-2000:]
    # Every line on stderr is a structured log line (nothing printed around the logger).
    assert len(lines) == len(everything.splitlines()), everything[-2000:]
    assert any(line["level"] == "debug" for line in lines)
    # (1) No log line, at any time, names the consumer or quotes them.
    assert leaks(everything) == [], "\n".join(leaks(everything))
    # (2) After the erasure nothing new names them: console alerts and webhook alerts too.
    after = alerts()[alert_mark:]
    assert after.strip(), "no console alert after the erasure"
    assert leaks(after) == [], "\n".join(leaks(after))
    late = [sent for at, sent in receivers.accepted if at > erased_at + 0.5]
    assert late, receivers.kinds()
    assert all(not leaks(json.dumps(sent, ensure_ascii=False)) for sent in late), late
    assert time.monotonic() - started < 60
