"""A consumer's rights over HTTP, on SQLite and PostgreSQL: an admin token exports (the CLI's
JSON) and erases, each recorded once in the audit under the token's holder with counts only;
other tokens are refused (403), bad bodies answered 400 in one line; after the erasure the
export holds no text or name; no log line ever names the person."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.app import create_app
from monitor.audit import AuditLog, Tokens
from monitor.cli import main
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import ALERTS, COORDINATOR, STORE
from tests.e2e.conftest import settle, write_config
from tests.e2e.test_alerts import ROSTER, T0
from tests.e2e.test_escalation import API_TOKEN, HTTP

NAME = "Zelda Quintanilla-Vock"
AUTHOR_ID = "90417730055123"
TEXTS = ("my parcel 77Q-ZX never came", "still nothing for parcel 77Q-ZX")
OTHER = ("55501", "Bo Other", "where is my order?")
# What must never reach a log line or the audit.
NEEDLES = (NAME, "Quintanilla", AUTHOR_ID, *TEXTS, "77Q-ZX")
EXPORT = "/api/v1/privacy/export"
ERASE = "/api/v1/privacy/erase"


@pytest.fixture
def debug_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The service's logging at debug, as JSON lines on (captured) stderr."""
    configure_logging(level="debug", fmt="json")
    yield capsys
    configure_logging(level="info")


async def start(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, database_url: str
) -> tuple[web.Application, Any, Path, dict[str, str]]:
    """Two waiting posts of NAME and one of another consumer; tokens by name."""
    clock = FakeClock(T0 + timedelta(minutes=1))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    for n, text in enumerate(TEXTS):
        graph.add_comment(
            post_id=post,
            created_time=T0 - timedelta(minutes=n + 1),
            message=text,
            author=(AUTHOR_ID, NAME),
        )
    graph.add_comment(
        post_id=post,
        created_time=T0 - timedelta(minutes=5),
        message=OTHER[2],
        author=(OTHER[0], OTHER[1]),
    )
    path = write_config(tmp_path / "c.toml", api_base_url=graph.base_url, database_url=database_url)
    path.write_text(path.read_text() + HTTP + ROSTER)
    app = create_app(load_config(path), clock=clock, start_polling=False)
    # As the service's runner (monitor.web.server.make_runner): no aiohttp access log.
    server = TestServer(app)
    await server.start_server(access_log=None)
    client = await aiohttp_client(server)
    await app[COORDINATOR].poll_once("acme-fb")
    await settle(lambda: app[ALERTS] is not None, "the service")
    store = app[STORE]
    tokens = Tokens(store, AuditLog(store))
    added = {"actor": "root", "origin": "test-host", "now": clock.now()}
    named = {
        "dpo": await tokens.add("dpo", scopes=["admin"], brands=["*"], **added),
        "dpo-acme": await tokens.add("dpo-acme", scopes=["admin"], brands=["acme"], **added),
        "anna": await tokens.add("anna", scopes=["read", "act"], brands=["*"], **added),
        "nina-phone": API_TOKEN,
    }
    return app, client, path, named


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _held(found: dict[str, Any]) -> str:
    """The export's data (not the echo of who was asked for) as text."""
    return json.dumps([found["messages"], found["items"], found["alerts"]], ensure_ascii=False)


def _no_needles(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


async def test_admin_exports_and_erases_once_each_in_the_audit(
    graph: FakeGraphApi,
    tmp_path: Path,
    aiohttp_client: Any,
    database_url: str,
    debug_logs: pytest.CaptureFixture[str],
) -> None:
    app, client, path, tokens = await start(graph, tmp_path, aiohttp_client, database_url)
    audit = AuditLog(app[STORE])
    dpo = bearer(tokens["dpo"])

    exported = await client.post(EXPORT, json={"author": NAME}, headers=dpo)
    assert exported.status == 200, await exported.text()
    assert exported.headers["Cache-Control"] == "no-store"
    found = await exported.json()
    assert found["author"] == NAME
    assert sorted(m["text"] for m in found["messages"]) == sorted(TEXTS)
    assert [i["author_name"] for i in found["items"]] == [NAME, NAME]
    assert OTHER[1] not in _held(found) and OTHER[2] not in _held(found)
    # The same JSON as the CLI's.
    debug_logs.readouterr()
    cli = ["privacy", "export", "-c", str(path), "--author", NAME]
    assert await asyncio.to_thread(main, cli) == 0
    assert json.loads(debug_logs.readouterr().out) == found

    (entry,) = await audit.entries(action="export", actor="dpo")
    assert (entry.via, entry.origin) == ("token", "127.0.0.1")
    assert entry.detail == {"messages": 2, "items": 2, "alerts": len(found["alerts"])}
    assert [e.via for e in await audit.entries(action="export")] == ["cli", "token"]

    # Erase by the platform id, as a form.
    erased = await client.post(ERASE, data={"author": AUTHOR_ID}, headers=dpo)
    assert erased.status == 200, await erased.text()
    counts = await erased.json()
    assert counts == {"messages": 2, "items": 2, "alerts": counts["alerts"]}
    (entry,) = await audit.entries(action="erase")
    assert (entry.actor, entry.via, entry.origin) == ("dpo", "token", "127.0.0.1")
    assert entry.detail == counts

    # Nothing of theirs is left to export, by name or by id; the other consumer is untouched.
    for author in (NAME, AUTHOR_ID):
        after = await client.post(EXPORT, json={"author": author}, headers=dpo)
        assert after.status == 200
        left = await after.json()
        assert _no_needles(_held(left)) == []
        assert all(m["text"] is None and m["author_name"] is None for m in left["messages"])
    other = await (await client.post(EXPORT, json={"author": OTHER[1]}, headers=dpo)).json()
    assert [m["text"] for m in other["messages"]] == [OTHER[2]]
    assert len(await audit.entries(action="export", actor="dpo")) == 4
    assert len(await audit.entries(action="erase")) == 1

    # The audit holds counts only; no log line names the person or quotes them.
    assert _no_needles(repr(await audit.entries())) == []
    logs = debug_logs.readouterr().err
    assert _no_needles(logs) == []


async def test_other_tokens_and_bad_bodies_are_refused(
    graph: FakeGraphApi,
    tmp_path: Path,
    aiohttp_client: Any,
    database_url: str,
    debug_logs: pytest.CaptureFixture[str],
) -> None:
    app, client, _path, tokens = await start(graph, tmp_path, aiohttp_client, database_url)
    body = {"author": NAME}
    for path in (EXPORT, ERASE):
        for name in ("anna", "nina-phone"):
            refused = await client.post(path, json=body, headers=bearer(tokens[name]))
            assert refused.status == 403
            assert "lacks the 'admin' scope" in (await refused.json())["error"]
        limited = await client.post(path, json=body, headers=bearer(tokens["dpo-acme"]))
        assert limited.status == 403
        assert "for all brands" in (await limited.json())["error"]
        assert (await client.post(path, json=body)).status == 401
        assert (await client.get(path, headers=bearer(tokens["dpo"]))).status == 405

    dpo = bearer(tokens["dpo"])
    bad: list[tuple[dict[str, Any], str]] = [
        ({}, "author is required"),
        ({"json": {}}, "author is required"),
        ({"json": {"author": ""}}, "author is required"),
        ({"json": {"author": "   "}}, "author is required"),
        ({"data": {"author": ""}}, "author is required"),
        ({"json": {"author": NAME * 10}}, "author must be at most 200 characters"),
        ({"json": {"author": 4711}}, "author must be a string"),
        ({"json": [NAME]}, "the body must be a JSON object"),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, "not valid"),
    ]
    for path in (EXPORT, ERASE):
        for request, reason in bad:
            headers = {**dpo, **request.get("headers", {})}
            sent = {k: v for k, v in request.items() if k != "headers"}
            answer = await client.post(path, headers=headers, **sent)
            error = (await answer.json())["error"]
            assert answer.status == 400 and reason in error and "\n" not in error, error
        # In the URL it would be in every proxy's access log: refused, and not done.
        in_url = await client.post(path, params={"author": NAME}, json=body, headers=dpo)
        assert in_url.status == 400
        assert "not in the URL" in (await in_url.json())["error"]

    # Nothing was exported or erased, so nothing recorded; the data is all still there.
    audit = AuditLog(app[STORE])
    assert await audit.entries(action="export") == []
    assert await audit.entries(action="erase") == []
    still = await (await client.post(EXPORT, json=body, headers=dpo)).json()
    assert sorted(m["text"] for m in still["messages"]) == sorted(TEXTS)
    # Each refusal is a log line that says what was wrong, never the value.
    logs = debug_logs.readouterr().err
    refusals = 2 * (5 + len(bad) + 1)
    assert logs.count('"request refused"') >= refusals
    assert _no_needles(logs) == []
