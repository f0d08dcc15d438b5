"""Leases on a real PostgreSQL: fair shares, takeover after expiry, handover, fencing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from monitor.cluster.leases import PostgresLeases
from monitor.store import FencedOut, create_engine, upgrade
from monitor.store.engine import AsyncEngine

SOURCES = [f"source:s{i:02d}" for i in range(10)]
WANTED = {"source": SOURCES, "receiver": ["receiver:ops"], "leader": ["leader"]}


@pytest.fixture
async def engine(postgres_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


def sources(held: dict[str, int]) -> set[str]:
    return {k for k in held if k.startswith("source:")}


async def settle(instances: list[PostgresLeases], rounds: int = 3) -> list[dict[str, int]]:
    """A few rounds of every instance, in turn, as their loops would run them."""
    held: list[dict[str, int]] = []
    for _ in range(rounds):
        held = [await i.round(WANTED) for i in instances]
    return held


async def test_three_instances_share_evenly_and_exclusively(engine: AsyncEngine) -> None:
    instances = [PostgresLeases(engine, f"i{n}", ttl=30) for n in range(3)]
    held = await settle(instances)
    counts = sorted(len(sources(h)) for h in held)
    assert counts == [3, 3, 4]
    every = [k for h in held for k in sources(h)]
    assert sorted(every) == SOURCES  # each exactly once
    assert sum("leader" in h for h in held) == 1
    assert sum("receiver:ops" in h for h in held) == 1


async def test_a_silent_instance_loses_its_keys_after_the_lease(engine: AsyncEngine) -> None:
    a, b = PostgresLeases(engine, "a", ttl=1), PostgresLeases(engine, "b", ttl=1)
    held_a, held_b = await settle([a, b])
    assert len(sources(held_a)) == len(sources(held_b)) == 5
    await asyncio.sleep(1.2)  # a stops renewing (killed)
    taken = await b.round(WANTED)
    assert sources(taken) == set(SOURCES)
    # Every key a held was taken with a new fence.
    for key in sources(held_a):
        assert taken[key] > held_a[key]


async def test_a_graceful_leave_hands_over_at_the_next_round(engine: AsyncEngine) -> None:
    a, b = PostgresLeases(engine, "a", ttl=30), PostgresLeases(engine, "b", ttl=30)
    await settle([a, b])
    await a.leave()
    assert sources(await b.round(WANTED)) == set(SOURCES)


async def test_a_returning_instance_gets_its_share_back(engine: AsyncEngine) -> None:
    a, b = PostgresLeases(engine, "a", ttl=30), PostgresLeases(engine, "b", ttl=30)
    assert len(sources(await a.round(WANTED))) == 10  # alone
    held_a, held_b = await settle([a, b])
    assert (len(sources(held_a)), len(sources(held_b))) == (5, 5)
    assert not sources(held_a) & sources(held_b)


async def test_guard_refuses_a_former_holder(engine: AsyncEngine) -> None:
    a, b = PostgresLeases(engine, "a", ttl=1), PostgresLeases(engine, "b", ttl=1)
    held_a = await a.round({"source": ["source:x"]})
    async with engine.begin() as conn:
        await a.guard(conn, "source:x", held_a["source:x"])  # still ours
    await asyncio.sleep(1.2)
    held_b = await b.round({"source": ["source:x"]})
    assert "source:x" in held_b
    with pytest.raises(FencedOut):
        async with engine.begin() as conn:
            await a.guard(conn, "source:x", held_a["source:x"])
    # And a's next round no longer reports it.
    assert "source:x" not in await a.round({"source": ["source:x"]})


async def test_keys_no_longer_wanted_are_given_back(engine: AsyncEngine) -> None:
    a = PostgresLeases(engine, "a", ttl=30)
    await a.round({"source": ["source:x", "source:y"]})
    assert set(await a.round({"source": ["source:x"]})) == {"source:x"}
    async with engine.connect() as conn:
        holder = (
            await conn.execute(text("SELECT holder FROM cluster_leases WHERE key = 'source:y'"))
        ).scalar_one()
    assert holder is None


async def test_a_former_holders_batch_is_refused_whole(engine: AsyncEngine) -> None:
    from monitor.domain import Batch
    from monitor.pipeline import handle_batch
    from monitor.store import Store
    from tests.integration.test_store_pipeline import C1, NOW, POST, SETTINGS

    a, b = PostgresLeases(engine, "a", ttl=1), PostgresLeases(engine, "b", ttl=1)
    key = "source:acme-fb"
    fence = (await a.round({"source": [key]}))[key]
    await asyncio.sleep(1.2)
    assert key in await b.round({"source": [key]})  # b took over while a was away
    store = Store(engine)
    batch = Batch(messages=(POST, C1), cursor={"since": "later"})
    with pytest.raises(FencedOut):
        await handle_batch(
            store, SETTINGS, batch, NOW, guard=lambda conn: a.guard(conn, key, fence)
        )
    assert await store.counts() == {"messages": 0, "items": 0}
    assert "acme-fb" not in await store.source_states()
