"""Issue 18, parts 1 and 2: purge and erasure change no report figure and leave no trace."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, String, Text, insert, select

from monitor.app import source_settings
from monitor.cli import main
from monitor.config import Config, load_config
from monitor.domain import Batch, Message
from monitor.pipeline import handle_batch
from monitor.store import Store, create_engine, upgrade
from monitor.store.pseudonyms import load_pseudonyms
from monitor.store.tables import alert_outbox, metadata

# Days old: far past the 1-day retention, so everything answered is purged.
DAYS = 10
ANN = ("fb-ann-4711", "Ann Consumer", "my order 55123 never arrived, call me at 0612345678")
BOB = ("fb-bob-0815", "Bob Other", "love the new bikes")


def _config(tmp_path: Path, database_url: str, **privacy: Any) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in {"retention_days": 1, **privacy}.items()]
    path = tmp_path / "config.toml"
    path.write_text(
        f'database_url = "{database_url}"\n[privacy]\n' + "\n".join(lines) + "\n"
        '[[sources]]\ntype = "facebook_page"\nname = "acme-fb"\nbrand = "acme"\n'
        'page_id = "1"\naccess_token = "t"\ncalendar = "always"\n'
        'ignore_authors = ["Spam Bot"]\n',
        encoding="utf-8",
    )
    return path


def _message(pid: str, at: datetime, who: tuple[str, str, str] | None, **kw: Any) -> Message:
    author_id, author_name, text = who or ("1", "Acme Staff", f"reply {pid}")
    values: dict[str, Any] = {
        "platform_id": pid,
        "thread_id": "t_" + pid.split("_")[1],
        "parent_id": None,
        "author_id": author_id,
        "author_name": author_name,
        "text": text,
        "created_at": at,
        "seq": int(pid.rsplit("_", 1)[1]),
        "is_brand": who is None,
        "permalink": f"https://facebook.example/{pid}",
    }
    return Message(**{**values, **kw})


def _threads(start: datetime) -> list[Message]:
    """Two consumers over three threads: answered in time, late, dismissed, still open."""
    m = timedelta(minutes=1)
    return [
        _message("c_1_1", start, ANN),
        _message("c_1_2", start + 20 * m, None),
        _message("c_2_1", start + 60 * m, BOB),
        _message("c_2_2", start + 70 * m, ANN),
        _message("c_2_3", start + 200 * m, None),
        _message("c_3_1", start + 300 * m, ANN, hidden=True),
        _message("c_3_2", start + 301 * m, ("bot", "Spam Bot", "buy now")),
        _message("c_4_1", start + 400 * m, BOB),
    ]


async def _ingest(config: Config, messages: list[Message], *, alert: bool = True) -> None:
    engine = create_engine(config.database_url)
    try:
        await upgrade(engine)
        store = Store(engine)
        key = config.privacy.pseudonym_key
        pseudonyms = await load_pseudonyms(store, key.get_secret_value() if key else None)
        (settings,) = source_settings(config, pseudonyms)
        await handle_batch(store, settings, Batch(messages=tuple(messages), cursor={}), _now())
        if not alert:
            return
        async with engine.begin() as conn:
            # An alert that quoted Ann (as the notifier writes them).
            await conn.execute(
                insert(alert_outbox).values(
                    delivery_id="n1:slack",
                    receiver="slack",
                    kind="warning",
                    created_at=messages[0].created_at,
                    next_attempt_at=messages[0].created_at,
                    attempts=1,
                    state="delivered",
                    notification={
                        "source": "acme-fb",
                        "items": [
                            {
                                "item_id": item_id,
                                "author": ANN[1],
                                "excerpt": ANN[2][:40],
                                "permalink": "https://facebook.example/c_1_1",
                            }
                            for item_id in await _ids(conn)
                        ],
                    },
                )
            )
    finally:
        await engine.dispose()


async def _ids(conn: Any) -> list[int]:
    from monitor.store.tables import items

    return [row[0] for row in await conn.execute(select(items.c.message_id))]


async def _every_value(database_url: str) -> list[str]:
    """Every text and JSON value of every table, as text."""
    engine = create_engine(database_url)
    found: list[str] = []
    try:
        async with engine.connect() as conn:
            for table in metadata.sorted_tables:
                wanted = [c for c in table.c if isinstance(c.type, String | Text | JSON)]
                for row in await conn.execute(select(*wanted)):
                    found.extend(json.dumps(v) if not isinstance(v, str) else v for v in row)
    finally:
        await engine.dispose()
    return found


def _now() -> datetime:
    return datetime.now(UTC)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    out = capsys.readouterr()
    return out.out + out.err


def _reports(capsys: pytest.CaptureFixture[str], config: Path) -> list[Any]:
    since = (_now() - timedelta(days=DAYS + 1)).strftime("%Y-%m-%dT%H:%MZ")
    until = (_now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%MZ")
    base = ["report", "-c", str(config), "--since", since, "--until", until, "--format", "json"]
    found = []
    for extra in ([], ["--by", "moderator"], ["--items"]):
        body = json.loads(_run(capsys, *base, *extra))
        body.pop("as_of", None)  # the moment each report runs
        # The window is set from the clock at each run (a minute may pass between runs); the
        # items lie well inside it, so the figures compare as they are.
        body.pop("since", None)
        body.pop("until", None)
        # Not figures: who wrote an item and where it was (gone once purged or erased).
        for row in body.get("rows", []):
            row.pop("author", None)
            row.pop("permalink", None)
        found.append(body)
    return found


def test_purge_and_erase_change_no_figure_and_leave_no_trace(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, database_url)
    config = load_config(path)
    asyncio.run(_ingest(config, _threads(_now() - timedelta(days=DAYS))))
    before = _reports(capsys, path)
    assert before[0]["rows"] and any(r["items"] for r in before[0]["rows"])

    held = json.loads(_run(capsys, "privacy", "export", "-c", str(path), "--author", ANN[1]))
    assert [m["text"] for m in held["messages"]] == [ANN[2]] * 3
    assert len(held["items"]) == 3 and held["alerts"]
    # Only the open item keeps a name; stored authors are pseudonyms.
    assert all(m["author_name"].startswith("p:") for m in held["messages"])

    assert "purged 7 messages" in _run(capsys, "privacy", "purge", "-c", str(path))
    assert _reports(capsys, path) == before
    values = asyncio.run(_every_value(database_url))
    # Bob's open item keeps its text and name until answered or dismissed.
    assert BOB[2] in values and BOB[1] in values
    assert ANN[2] not in values and ANN[1] not in values

    out = _run(capsys, "privacy", "erase", "-c", str(path), "--author", BOB[0])
    assert "erased 1 messages" in out  # his answered one was purged already
    assert _reports(capsys, path) == before
    values = asyncio.run(_every_value(database_url))
    for secret in (*ANN, *BOB):
        assert not any(secret in v for v in values), secret
        assert secret not in out
    entries = json.loads(_run(capsys, "audit", "-c", str(path), "--format", "json"))
    rows = entries if isinstance(entries, list) else entries["entries"]
    assert sorted(e["action"] for e in rows) == ["erase", "export"]
    assert {e["via"] for e in rows} == {"cli"}


def test_store_text_false_keeps_no_text_and_pseudonyms_are_stable(
    database_url: str, tmp_path: Path
) -> None:
    config = load_config(_config(tmp_path, database_url, store_text=False, retention_days="off"))
    asyncio.run(_ingest(config, _threads(_now() - timedelta(hours=3))))
    values = asyncio.run(_every_value(database_url))
    for _, _, text in (ANN, BOB):
        assert not any(text in v for v in values)
    # The id never, the name only on the open item (the queue page shows it).
    assert ANN[0] not in values and BOB[0] not in values and ANN[1] not in values

    async def keys() -> tuple[bytes, bytes]:
        engine = create_engine(config.database_url)
        try:
            first = await load_pseudonyms(Store(engine), None)
        finally:
            await engine.dispose()
        engine = create_engine(config.database_url)  # as after a restart
        try:
            return first.key, (await load_pseudonyms(Store(engine), None)).key
        finally:
            await engine.dispose()

    first, again = asyncio.run(keys())
    assert first == again and len(first) == 32


def test_a_later_poll_does_not_write_purged_text_back(database_url: str, tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, database_url))
    messages = _threads(_now() - timedelta(days=DAYS))
    asyncio.run(_ingest(config, messages))
    assert main(["privacy", "purge", "-c", str(_config(tmp_path, database_url))]) == 0
    asyncio.run(_ingest(config, messages, alert=False))  # read again, text and all
    values = asyncio.run(_every_value(database_url))
    assert not any(ANN[2] in v for v in values)
    # Nor her posts' links (on the open networks a link names its author).
    assert not any(v.endswith("/c_1_1") for v in values)
