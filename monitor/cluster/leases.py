"""Leases in PostgreSQL: which instance holds which source, receiver or the leader role."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.store import FencedOut

# Rows of instances not seen for this many lease periods are deleted (they only count as
# alive for one period; the rest is housekeeping).
FORGET_AFTER_LEASES = 10

# Every statement of a round uses the database's clock (now() of the round's transaction), so
# the instances' own clocks never need to agree.
_HEARTBEAT = text(
    "INSERT INTO cluster_instances (name, started_at, seen_at) VALUES (:me, now(), now())"
    " ON CONFLICT (name) DO UPDATE SET seen_at = now()"
)
_LIVE = text(
    "SELECT name FROM cluster_instances WHERE seen_at > now() - make_interval(secs => :ttl)"
    " ORDER BY name"
)
_FORGET = text(
    "DELETE FROM cluster_instances WHERE seen_at < now() - make_interval(secs => :forget)"
)
_ENSURE = text(
    "INSERT INTO cluster_leases (key, holder, fence, expires_at)"
    " SELECT k, NULL, 0, to_timestamp(0) FROM unnest(CAST(:keys AS text[])) AS k"
    " ON CONFLICT (key) DO NOTHING"
)
_RENEW = text(
    "UPDATE cluster_leases SET expires_at = now() + make_interval(secs => :ttl)"
    " WHERE holder = :me AND key = ANY(CAST(:keys AS text[])) RETURNING key, fence"
)
_RELEASE = text(
    "UPDATE cluster_leases SET holder = NULL, expires_at = now()"
    " WHERE holder = :me AND key = ANY(CAST(:keys AS text[]))"
)
_RELEASE_UNWANTED = text(
    "UPDATE cluster_leases SET holder = NULL, expires_at = now()"
    " WHERE holder = :me AND NOT (key = ANY(CAST(:keys AS text[])))"
)
# A free or expired lease is taken with a new fence; SKIP LOCKED lets instances claiming at
# the same moment take different keys instead of waiting for each other.
_CLAIM = text(
    "UPDATE cluster_leases SET holder = :me, fence = fence + 1,"
    " expires_at = now() + make_interval(secs => :ttl)"
    " WHERE key IN (SELECT key FROM cluster_leases"
    "   WHERE key = ANY(CAST(:keys AS text[])) AND (holder IS NULL OR expires_at < now())"
    "   ORDER BY key LIMIT :n FOR UPDATE SKIP LOCKED)"
    " RETURNING key, fence"
)
_LEAVE = text("DELETE FROM cluster_instances WHERE name = :me")
_HOLDS = text(
    "SELECT 1 FROM cluster_leases WHERE key = :key AND holder = :me AND fence = :fence FOR SHARE"
)
_HOLDERS = text("SELECT key, holder, expires_at > now() AS live FROM cluster_leases ORDER BY key")


class Leases(Protocol):
    """Who holds what: one round at a time, and a check inside a write's transaction."""

    instance: str

    async def round(
        self,
        wanted: Mapping[str, Sequence[str]],
        sticky: Collection[str] = (),
        *,
        claim: bool = True,
    ) -> dict[str, int]:
        """Renew, give back and take leases; return every key held with its fence.

        Keys of a `sticky` group are never given back for balance, only when not wanted;
        `claim=False` takes nothing new (an instance's first round: say it is alive first).
        """
        ...

    async def leave(self) -> None:
        """Give every lease back (a graceful stop)."""
        ...

    async def guard(self, conn: AsyncConnection, key: str, fence: int) -> None:
        """Raise FencedOut unless this instance still holds `key` with `fence` (locks it)."""
        ...


class SoloLeases:
    """One instance holds everything (SQLite: a second instance is refused anyway)."""

    def __init__(self, instance: str) -> None:
        self.instance = instance

    async def round(
        self,
        wanted: Mapping[str, Sequence[str]],
        sticky: Collection[str] = (),
        *,
        claim: bool = True,
    ) -> dict[str, int]:
        """Every wanted key, fence 0."""
        return {key: 0 for keys in wanted.values() for key in keys}

    async def leave(self) -> None:
        """Nothing to give back."""

    async def guard(self, conn: AsyncConnection, key: str, fence: int) -> None:
        """Always held."""


class PostgresLeases:
    """Leases shared by the instances on one PostgreSQL database.

    Each round, in one transaction: the instance says it is alive, renews what it holds,
    gives back what is above its fair share of each group (`fair_share`) and
    takes free or expired keys up to that share. A holder that stops renewing (killed, cut
    off) loses its keys `ttl` seconds after its last round; the others take them at their
    next round. Every takeover raises the key's fence, which `guard` checks inside a write.
    """

    def __init__(self, engine: AsyncEngine, instance: str, ttl: float) -> None:
        self._engine = engine
        self.instance = instance
        self.ttl = ttl
        self._known: set[str] = set()

    async def round(
        self,
        wanted: Mapping[str, Sequence[str]],
        sticky: Collection[str] = (),
        *,
        claim: bool = True,
    ) -> dict[str, int]:
        """One round; the keys held afterwards with their fences."""
        every = sorted({key for keys in wanted.values() for key in keys})
        me = {"me": self.instance, "ttl": self.ttl}
        async with self._engine.begin() as conn:
            await conn.execute(_HEARTBEAT, me)
            live = list((await conn.execute(_LIVE, me)).scalars())
            await conn.execute(_FORGET, {"forget": self.ttl * FORGET_AFTER_LEASES})
            if not set(every) <= self._known:
                await conn.execute(_ENSURE, {"keys": every})
                self._known.update(every)
            await conn.execute(_RELEASE_UNWANTED, {**me, "keys": every})
            held = dict(_pairs(await conn.execute(_RENEW, {**me, "keys": every})))
            for group, keys in wanted.items():
                share = fair_share(len(keys), live, self.instance)
                mine = sorted(k for k in keys if k in held)
                if len(mine) > share and group not in sticky:
                    excess = mine[share:]
                    await conn.execute(_RELEASE, {**me, "keys": excess})
                    for key in excess:
                        del held[key]
                elif len(mine) < share and claim:
                    taken = await conn.execute(
                        _CLAIM, {**me, "keys": list(keys), "n": share - len(mine)}
                    )
                    held.update(_pairs(taken))
        return held

    async def leave(self) -> None:
        """Give every lease back and leave the live instances at once."""
        me = {"me": self.instance}
        async with self._engine.begin() as conn:
            await conn.execute(_RELEASE_UNWANTED, {**me, "keys": []})
            await conn.execute(_LEAVE, me)

    async def guard(self, conn: AsyncConnection, key: str, fence: int) -> None:
        """Refuse the write (FencedOut) unless the lease is still ours with this fence.

        The row stays share-locked until the write's transaction ends, so a takeover waits
        for the write instead of slipping in between the check and the commit.
        """
        found = await conn.execute(_HOLDS, {"key": key, "me": self.instance, "fence": fence})
        if found.first() is None:
            raise FencedOut(key)

    async def holders(self) -> list[dict[str, Any]]:
        """Every lease with its holder and whether it is unexpired (tests, inspection)."""
        async with self._engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(_HOLDERS)]


def fair_share(keys: int, live: Sequence[str], me: str) -> int:
    """How many of `keys` this instance should hold: an even split, the remainder going one
    each to the first instances by name, so the shares add up to exactly `keys`."""
    names = sorted({*live, me})
    low, remainder = divmod(keys, len(names))
    return low + (1 if names.index(me) < remainder else 0)


def _pairs(rows: Any) -> list[tuple[str, int]]:
    return [(row.key, int(row.fence)) for row in rows]
