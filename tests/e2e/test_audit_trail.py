"""Named tokens and the audit trail over real HTTP, on SQLite and PostgreSQL: every ack,
dismiss and undo once with its actor, scopes enforced, a revoked token out at once, the
audit as JSON and CSV from the API and the CLI, and no token stored in clear."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.app import create_app
from monitor.audit import AuditLog, Tokens, token_hash
from monitor.cli import main
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.simulator.graph_api import FakeGraphApi
from monitor.store.engine import sqlite_file
from monitor.web.keys import ALERTS, COORDINATOR, STORE
from monitor.web.undo import UNDO_SECONDS
from tests.e2e.conftest import write_config
from tests.e2e.test_alerts import ROSTER, T0, advance_to, settle
from tests.e2e.test_escalation import API_TOKEN, HTTP


async def start(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, database_url: str
) -> tuple[web.Application, Any, FakeClock, dict[str, int], Path]:
    """Three waiting acme items on a served app with one config token (nina-phone)."""
    clock = FakeClock(T0 + timedelta(minutes=1))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    for n, text in enumerate(("first", "second", "third")):
        graph.add_comment(
            post_id=post,
            created_time=T0 - timedelta(minutes=n),
            message=text,
            author=(f"9{n}", "C"),
        )
    path = write_config(tmp_path / "c.toml", api_base_url=graph.base_url, database_url=database_url)
    text = path.read_text().replace("[http]\n", "[http]\npublic_url = 'https://webcare.test'\n")
    path.write_text(text + HTTP + ROSTER)
    app = create_app(load_config(path), clock=clock, start_polling=False)
    client = await aiohttp_client(app)
    await app[COORDINATOR].poll_once("acme-fb")
    await settle(lambda: app[ALERTS] is not None, "the service")
    ids: dict[str, int] = {}
    store = app[STORE]
    for item in await store.unanswered_items():
        message = (await store.messages_by_id([item.message_id]))[item.message_id]
        ids[message.message.text] = item.message_id
    return app, client, clock, ids, path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_action_once_with_its_actor_scopes_revocation_and_the_audit_api(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, database_url: str
) -> None:
    app, client, clock, ids, _path = await start(graph, tmp_path, aiohttp_client, database_url)
    store = app[STORE]
    tokens = Tokens(store, AuditLog(store))
    added = {"actor": "root", "origin": "test-host", "now": clock.now()}
    anna = await tokens.add("anna", scopes=["read", "act"], brands=["acme"], **added)
    rita = await tokens.add("rita", scopes=["read"], brands=["acme"], **added)
    dpo = await tokens.add("dpo", scopes=["admin"], brands=["*"], **added)
    stranger = await tokens.add("olga", scopes=["read", "act"], brands=["other"], **added)

    # Ack through the API: one entry, under the token's name, from the client's address.
    first = ids["first"]
    assert (await client.post(f"/api/v1/items/{first}/ack", headers=bearer(anna))).status == 200
    assert (await client.post(f"/api/v1/items/{first}/ack", headers=bearer(anna))).status == 200
    # Scopes: read only may not act; another brand's token does not even see the item.
    refused = await client.post(f"/api/v1/items/{first}/ack", headers=bearer(rita))
    assert refused.status == 403
    assert "lacks the 'act' scope" in (await refused.json())["error"]
    other = await client.post(f"/api/v1/items/{first}/ack", headers=bearer(stranger))
    assert other.status == 404
    assert (await client.get("/api/v1/items", headers=bearer(rita))).status == 200
    assert (await client.get("/api/v1/items", headers=bearer(dpo))).status == 403

    # Dismiss through the API.
    second = ids["second"]
    done = await client.post(
        f"/api/v1/items/{second}/dismiss", json={"reason": "spam"}, headers=bearer(anna)
    )
    assert done.status == 200, await done.text()

    # The queue page: a dismissal undone, then one carried out after its undo window.
    assert (await client.get(f"/?token={anna}", allow_redirects=False)).status == 303
    page = await (await client.get("/")).text()
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf is not None
    third = ids["third"]
    form = {"csrf": csrf.group(1), "reason": "duplicate"}
    for action in ("dismiss", "undo", "dismiss"):
        answer = await client.post(f"/items/{third}/{action}", data=form, allow_redirects=False)
        assert answer.status == 303, await answer.text()
    await advance_to(clock, clock.now() + timedelta(seconds=UNDO_SECONDS + 1))
    audit = AuditLog(store)
    for _ in range(200):
        if await audit.entries(action="dismiss", item_id=third):
            break
        await advance_to(clock, clock.now() + timedelta(seconds=1))
    # The page shows who dismissed what and why.
    page = await (await client.get("/")).text()
    assert "Recently dismissed" in page and "anna" in page and "Duplicate" in page

    # A signed link: no person in it, so the audit says a signed link did it.
    links = app[ALERTS].links
    assert links is not None
    link = links.action_url("dismiss", first, clock.now()).removeprefix(links.base_url)
    assert (await client.post(link, data={"reason": "no_reply_needed"})).status == 200

    entries = await audit.entries(brands="*")
    acts = sorted((e.action, e.item_id, e.actor, e.reason) for e in entries)
    assert acts == sorted(
        [
            ("ack", first, "anna", None),
            ("dismiss", second, "anna", "spam"),
            ("undo", third, "anna", "duplicate"),
            ("dismiss", third, "anna", "duplicate"),
            ("dismiss", first, "signed link", "no_reply_needed"),
        ]
    )
    assert {e.origin for e in entries} == {"127.0.0.1"}
    assert {e.via for e in entries} == {"token"}

    # The API's audit: a read token sees its brand's entries, an admin every entry.
    mine = await client.get("/api/v1/audit", headers=bearer(rita))
    assert mine.status == 200
    assert len((await mine.json())["entries"]) == 5
    everything = await (await client.get("/api/v1/audit", headers=bearer(dpo))).json()
    assert [e["action"] for e in everything["entries"]].count("token_add") == 4
    assert (await client.get("/api/v1/audit", headers=bearer(stranger))).status == 200
    assert (await (await client.get("/api/v1/audit", headers=bearer(stranger))).json()) == {
        "entries": []
    }
    as_csv = await client.get("/api/v1/audit?action=dismiss&format=csv", headers=bearer(rita))
    rows = list(csv.DictReader(io.StringIO(await as_csv.text())))
    assert as_csv.content_type == "text/csv"
    assert sorted((r["item_id"], r["actor"], r["reason"]) for r in rows) == sorted(
        [
            (str(second), "anna", "spam"),
            (str(third), "anna", "duplicate"),
            (str(first), "signed link", "no_reply_needed"),
        ]
    )
    assert all(r["at"].endswith("Z") for r in rows)
    by_item = await (await client.get(f"/api/v1/audit?item={first}", headers=bearer(rita))).json()
    assert [e["action"] for e in by_item["entries"]] == ["dismiss", "ack"]

    # Revoked: refused at the very next request, API and queue page alike.
    await tokens.revoke("anna", now=clock.now(), actor="root", origin="test-host")
    gone = await client.get("/api/v1/items", headers=bearer(anna))
    assert gone.status == 401
    assert (await client.get("/", allow_redirects=False)).status == 401
    # The config token still works, under its name.
    assert (await client.get("/api/v1/items", headers=bearer(API_TOKEN))).status == 200

    # Never stored in clear: only the hash is in the database file.
    path = sqlite_file(database_url)
    if path is not None:
        await store.engine.dispose()
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        for token in (anna, rita, dpo, stranger):
            assert token.encode() not in raw
        assert token_hash(anna).encode() in raw


def test_cli_tokens_and_audit(
    graph: FakeGraphApi, tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "c.toml", api_base_url=graph.base_url, database_url=database_url)
    config = ["-c", str(path)]
    assert main(["tokens", "add", "anna", "--scopes", "read,act", "--brands", "acme", *config]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert main(["tokens", "add", "bot", "--scopes", "root", "--brands", "*", *config]) == 1
    assert "scopes must be some of read, act, admin" in capsys.readouterr().err
    assert main(["tokens", "add", "bot", "--brands", "nope", *config]) == 2
    assert main(["tokens", "revoke", "anna", *config]) == 0
    assert main(["tokens", "revoke", "anna", *config]) == 1
    capsys.readouterr()
    assert main(["tokens", "list", *config]) == 0
    listing = capsys.readouterr().out
    assert "anna" in listing and "read,act" in listing and token not in listing

    assert main(["audit", *config, "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)["entries"]
    assert [(e["action"], e["via"], e["detail"]["token"]) for e in entries] == [
        ("token_revoke", "cli", "anna"),
        ("token_add", "cli", "anna"),
    ]
    assert main(["audit", *config, "--format", "csv", "--action", "token_add"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["action"] for r in rows] == ["token_add"] and rows[0]["at"].endswith("Z")
    assert main(["audit", *config]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["at", "actor", "via", "action"]
    # Local time with its offset (Amsterdam: +01:00 or +02:00).
    assert re.search(r"\+0[12]:00", table[1])
    assert main(["audit", *config, "--since", "2999-01-01"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
