"""Ids that name a person (a Messenger conversation's PSID, a Bluesky post's DID) are masked by
an erasure and by the purge of a whole conversation; a re-read maps onto the masked rows."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, String, Text, func, select

from monitor.app import source_settings
from monitor.config import Config, load_config
from monitor.domain import Batch, Message
from monitor.pipeline import handle_batch
from monitor.privacy import erase_author, pseudonyms_of, purge_now
from monitor.store import Store, create_engine, upgrade
from monitor.store.identities import has_pseudonym, mask_known, readable
from monitor.store.tables import items, messages, metadata

PAGE = "900100"
ANN_PSID, BOB_PSID = "5550123444", "7770999111"
BRAND_DID, ANN_DID, BOB_DID = "did:plc:brand0001", "did:plc:ann0123", "did:plc:bob0456"
ANN_TEXT = "where is my refund 44X-QZ"


def _config(tmp_path: Path, database_url: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(
        f'database_url = "{database_url}"\n[privacy]\nretention_days = 30\n'
        '[[sources]]\ntype = "messenger"\nname = "acme-msg"\nbrand = "acme"\n'
        f'page_id = "{PAGE}"\naccess_token = "t"\ncalendar = "always"\nstore_text = true\n'
        '[[sources]]\ntype = "bluesky"\nname = "acme-bsky"\nbrand = "acme"\n'
        'handle = "acme.bsky.social"\napp_password = "p"\ncalendar = "always"\n',
        encoding="utf-8",
    )
    return load_config(path)


def _now() -> datetime:
    return datetime.now(UTC)


def _dm(n: int, psid: str, at: datetime, *, page: bool = False, text: str = "") -> Message:
    """A Messenger message: the conversation is keyed by the person's PSID."""
    return Message(
        platform_id=f"m_{n}",
        thread_id=psid,
        parent_id=None,
        author_id=PAGE if page else psid,
        author_name="Acme" if page else f"Person {psid}",
        text=text or f"message {n}",
        created_at=at,
        seq=n,
        is_brand=page,
    )


def _uri(did: str, key: str) -> str:
    return f"at://{did}/app.bsky.feed.post/{key}"


def _post(did: str, key: str, root: str, parent: str | None, at: datetime, n: int) -> Message:
    brand = did == BRAND_DID
    return Message(
        platform_id=_uri(did, key),
        thread_id=root,
        parent_id=parent,
        author_id=did,
        author_name=f"{key}.bsky.social",
        text=ANN_TEXT if did == ANN_DID else f"post {key}?",
        created_at=at,
        seq=n,
        is_brand=brand,
        permalink=f"https://bsky.app/profile/{did}/post/{key}",
        kind="brand" if brand else "interaction",
    )


async def _store(config: Config, name: str, batch_messages: list[Message]) -> None:
    engine = create_engine(config.database_url)
    try:
        await upgrade(engine)
        store = Store(engine)
        pseudonyms = await pseudonyms_of(store, config)
        (settings,) = [s for s in source_settings(config, pseudonyms) if s.ref.name == name]
        batch = Batch(messages=tuple(batch_messages), cursor={})
        await handle_batch(store, settings, batch, _now())
    finally:
        await engine.dispose()


async def _with_store(config: Config, work: Any) -> Any:
    engine = create_engine(config.database_url)
    try:
        return await work(Store(engine))
    finally:
        await engine.dispose()


async def _every_value(config: Config) -> list[str]:
    async def read(store: Store) -> list[str]:
        found: list[str] = []
        async with store.engine.connect() as conn:
            for table in metadata.sorted_tables:
                wanted = [c for c in table.c if isinstance(c.type, String | Text | JSON)]
                for row in await conn.execute(select(*wanted)):
                    found.extend(v if isinstance(v, str) else json.dumps(v) for v in row)
        return found

    result: list[str] = await _with_store(config, read)
    return result


async def _count(config: Config, table: Any) -> int:
    async def read(store: Store) -> int:
        async with store.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar())

    result: int = await _with_store(config, read)
    return result


async def _states(config: Config, source: str) -> list[tuple[Any, ...]]:
    async def read(store: Store) -> list[tuple[Any, ...]]:
        query = (
            select(items.c.message_id, items.c.state, items.c.response_seconds)
            .where(items.c.source == source)
            .order_by(items.c.message_id)
        )
        async with store.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(query)]

    result: list[tuple[Any, ...]] = await _with_store(config, read)
    return result


async def _states_by_key(config: Config) -> dict[str, str]:
    """Each Bluesky item's state by its post's record key (the part an erasure keeps)."""

    async def read(store: Store) -> dict[str, str]:
        query = select(messages.c.platform_id, items.c.state).join(
            items, items.c.message_id == messages.c.id
        )
        async with store.engine.connect() as conn:
            return {pid.rsplit("/", 1)[1]: state for pid, state in await conn.execute(query)}

    result: dict[str, str] = await _with_store(config, read)
    return result


def _conversations(start: datetime) -> list[Message]:
    m = timedelta(minutes=1)
    return [
        _dm(1, ANN_PSID, start, text=ANN_TEXT),
        _dm(2, ANN_PSID, start + 5 * m, page=True),
        _dm(3, ANN_PSID, start + 60 * m, text="and now?"),  # waits
        _dm(10, BOB_PSID, start + 2 * m),
        _dm(11, BOB_PSID, start + 9 * m, page=True),
    ]


def _holds(values: list[str], secret: str) -> bool:
    return any(secret in v for v in values)


def test_erasing_a_messenger_person_masks_their_conversation(
    database_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, database_url)
    start = _now() - timedelta(hours=3)
    dms = _conversations(start)
    asyncio.run(_store(config, "acme-msg", dms))
    before = asyncio.run(_states(config, "acme-msg"))
    assert _holds(asyncio.run(_every_value(config)), ANN_PSID)

    asyncio.run(_with_store(config, lambda s: erase_author(s, config, ANN_PSID, _now())))
    values = asyncio.run(_every_value(config))
    assert not _holds(values, ANN_PSID) and not _holds(values, ANN_TEXT)
    assert _holds(values, BOB_PSID)  # nobody else's conversation is touched
    assert asyncio.run(_states(config, "acme-msg")) == before

    # The next poll reads Ann's conversation again, with the Page's answer to her question.
    rows = asyncio.run(_count(config, messages))
    answer = _dm(4, ANN_PSID, start + 70 * timedelta(minutes=1), page=True)
    asyncio.run(_store(config, "acme-msg", [*dms[:3], answer]))
    values = asyncio.run(_every_value(config))
    assert asyncio.run(_count(config, messages)) == rows + 1  # only the answer is new
    assert not _holds(values, ANN_PSID) and not _holds(values, ANN_TEXT)
    states = dict((i, s) for i, s, _ in asyncio.run(_states(config, "acme-msg")))
    assert sorted(states.values()) == ["answered_in_time"] * 3  # her waiting item is answered

    async def active(store: Store) -> frozenset[str]:
        return await store.active_threads("acme-msg", active_since=start)

    threads = asyncio.run(_with_store(config, active))
    assert BOB_PSID in threads and len(threads) == 2
    assert [has_pseudonym(t) for t in sorted(threads)] == [False, True]
    assert readable(threads) == {BOB_PSID}  # what the poll and a re-read before a breach ask


def _thread(start: datetime) -> list[Message]:
    m = timedelta(minutes=1)
    root = _uri(BRAND_DID, "r1")
    ann_root = _uri(ANN_DID, "a2")
    return [
        _post(BRAND_DID, "r1", root, None, start, 1),
        _post(ANN_DID, "a1", root, root, start + m, 2),
        _post(BRAND_DID, "b1", root, _uri(ANN_DID, "a1"), start + 4 * m, 3),
        _post(BOB_DID, "c1", root, _uri(ANN_DID, "a1"), start + 6 * m, 4),
        _post(ANN_DID, "a2", ann_root, None, start + 30 * m, 5),  # her own thread; waits
    ]


def test_erasing_a_bluesky_author_masks_their_did_in_every_address(
    database_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, database_url)
    start = _now() - timedelta(hours=2)
    posts = _thread(start)
    asyncio.run(_store(config, "acme-bsky", posts))
    before = asyncio.run(_states(config, "acme-bsky"))

    asyncio.run(_with_store(config, lambda s: erase_author(s, config, ANN_DID, _now())))
    values = asyncio.run(_every_value(config))
    assert not _holds(values, ANN_DID) and not _holds(values, ANN_TEXT)
    assert _holds(values, BOB_DID) and _holds(values, BRAND_DID)
    assert asyncio.run(_states(config, "acme-bsky")) == before

    # Her thread is read again, now with the brand's answer: nothing is stored twice, no DID
    # comes back, and the answer finds her waiting question.
    rows = asyncio.run(_count(config, messages))
    ann_root = _uri(ANN_DID, "a2")
    answer = _post(BRAND_DID, "b2", ann_root, ann_root, start + 40 * timedelta(minutes=1), 6)
    asyncio.run(_store(config, "acme-bsky", [*posts, answer]))
    assert asyncio.run(_count(config, messages)) == rows + 1
    values = asyncio.run(_every_value(config))
    assert not _holds(values, ANN_DID) and not _holds(values, ANN_TEXT)
    # Her two questions answered (a1 before, a2 now); Bob's reply under hers still waits.
    assert asyncio.run(_states_by_key(config)) == {
        "a1": "answered_in_time",
        "a2": "answered_in_time",
        "c1": "open",
    }


def test_a_purged_conversation_is_masked_and_a_waiting_one_is_not(
    database_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, database_url)
    old = _now() - timedelta(days=40)
    # Ann's conversation is all past retention; Bob's old question still waits.
    dms = [
        _dm(1, ANN_PSID, old, text=ANN_TEXT),
        _dm(2, ANN_PSID, old + timedelta(minutes=3), page=True),
        _dm(10, BOB_PSID, old),
    ]
    asyncio.run(_store(config, "acme-msg", dms))
    asyncio.run(_with_store(config, lambda s: purge_now(s, config, _now())))
    values = asyncio.run(_every_value(config))
    assert not _holds(values, ANN_PSID) and not _holds(values, ANN_TEXT)
    assert _holds(values, BOB_PSID)  # his item waits: his conversation stays readable

    rows = asyncio.run(_count(config, messages))
    asyncio.run(_store(config, "acme-msg", dms))  # a later poll reads both again
    assert asyncio.run(_count(config, messages)) == rows
    assert not _holds(asyncio.run(_every_value(config)), ANN_PSID)


def test_ids_of_people_never_masked_pass_unchanged(database_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, database_url)
    posts = _thread(_now() - timedelta(hours=1))
    asyncio.run(_store(config, "acme-bsky", posts))

    async def mask(store: Store) -> Batch:
        pseudonyms = await pseudonyms_of(store, config)
        batch = Batch(messages=tuple(posts), cursor={}, removed=frozenset({posts[1].platform_id}))
        async with store.engine.connect() as conn:
            return await mask_known(conn, "acme-bsky", "bluesky", batch, pseudonyms)

    batch = asyncio.run(_with_store(config, mask))
    assert batch.messages == tuple(posts) and batch.removed == {posts[1].platform_id}


def test_an_erasure_whose_audit_entry_fails_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, database_url)
    asyncio.run(_store(config, "acme-msg", _conversations(_now() - timedelta(hours=3))))

    async def refused(_conn: Any, _done: Any) -> None:
        raise RuntimeError("the audit entry could not be written")

    async def erase(store: Store) -> None:
        await erase_author(store, config, ANN_PSID, _now(), refused)

    with pytest.raises(RuntimeError):
        asyncio.run(_with_store(config, erase))
    values = asyncio.run(_every_value(config))
    # One transaction: without its record, the erasure did not happen either.
    assert _holds(values, ANN_PSID) and _holds(values, ANN_TEXT)


def test_a_purged_bluesky_thread_is_masked_and_a_younger_one_is_not(
    database_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, database_url)
    m = timedelta(minutes=1)
    old, young = _now() - timedelta(days=40), _now() - timedelta(days=2)
    root, recent = _uri(BRAND_DID, "r1"), _uri(BRAND_DID, "r2")
    posts = [
        # The brand's old post, Ann's question under it, its answer: all past retention.
        _post(BRAND_DID, "r1", root, None, old, 1),
        _post(ANN_DID, "a1", root, root, old + m, 2),
        _post(BRAND_DID, "b1", root, _uri(ANN_DID, "a1"), old + 4 * m, 3),
        # Bob asked long ago (answered) and again in a younger thread, which stays as it is.
        _post(BOB_DID, "c1", root, root, old + 5 * m, 4),
        _post(BRAND_DID, "b3", root, _uri(BOB_DID, "c1"), old + 8 * m, 5),
        _post(BRAND_DID, "r2", recent, None, young, 6),
        _post(BOB_DID, "c2", recent, recent, young + m, 7),
    ]
    asyncio.run(_store(config, "acme-bsky", posts))
    asyncio.run(_with_store(config, lambda s: purge_now(s, config, _now())))
    values = asyncio.run(_every_value(config))
    assert not _holds(values, ANN_DID) and not _holds(values, ANN_TEXT)
    assert not _holds(values, _uri(BOB_DID, "c1"))  # masked in the purged thread
    assert _holds(values, _uri(BOB_DID, "c2"))  # his younger post keeps its address
    assert _holds(values, root)  # the brand's own address is nobody's personal data

    rows = asyncio.run(_count(config, messages))
    asyncio.run(_store(config, "acme-bsky", posts))  # a later poll reads both threads again
    assert asyncio.run(_count(config, messages)) == rows
    assert not _holds(asyncio.run(_every_value(config)), ANN_DID)
