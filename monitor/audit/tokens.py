"""Named API tokens with scopes and brands, stored as SHA-256 hashes in `api_tokens`.

The token itself is shown once, by `tokens add`; the database holds only its hash, so a copy
of the database lets nobody in. Adding and revoking are audited in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.audit.log import AuditLog
from monitor.store import Store
from monitor.store.tables import api_tokens

# read: items, report and audit of its brands; act: ack, dismiss, undo; admin: every audit entry.
SCOPES = ("read", "act", "admin")
ALL_BRANDS = "*"
TOKEN_BYTES = 32
# last_used_at is written at most this often per token (not on every request).
TOUCH_EVERY = timedelta(minutes=1)


class TokenError(Exception):
    """A token cannot be added or revoked as asked (the message says why)."""


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    """One named token as stored (never the token itself)."""

    id: int
    name: str
    scopes: tuple[str, ...]
    brands: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def token_hash(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_scopes(scopes: Collection[str]) -> tuple[str, ...]:
    """The scopes in their usual order, or TokenError naming the unknown ones."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise TokenError(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(unknown)})")
    return tuple(s for s in SCOPES if s in scopes)


def _record(row: Row[Any]) -> TokenRecord:
    m = row._mapping
    return TokenRecord(
        id=m["id"],
        name=m["name"],
        scopes=tuple(m["scopes"]),
        brands=tuple(m["brands"]),
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        last_used_at=m["last_used_at"],
    )


class Tokens:
    """Adds, revokes, lists and looks up the named tokens."""

    def __init__(self, store: Store, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit

    async def add(
        self,
        name: str,
        *,
        scopes: Collection[str],
        brands: Collection[str],
        now: datetime,
        actor: str,
        origin: str | None,
    ) -> str:
        """Create a token for `name` and return it (the only time it is seen)."""
        name = " ".join(name.split())
        if not name or len(name) > 200:
            raise TokenError("a token needs a name of 1 to 200 characters")
        ordered = check_scopes(scopes)
        if not brands:
            raise TokenError(f"a token needs brands (or {ALL_BRANDS!r} for all)")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        async with self._store.engine.begin() as conn:
            if await self._by_name(conn, name) is not None:
                raise TokenError(f"a token named {name!r} exists (or existed): choose another name")
            await conn.execute(
                insert(api_tokens).values(
                    name=name,
                    token_hash=token_hash(token),
                    scopes=list(ordered),
                    brands=sorted(brands),
                    created_at=now,
                )
            )
            detail = {"token": name, "scopes": list(ordered), "brands": sorted(brands)}
            await self._audit.record_in(
                conn,
                at=now,
                actor=actor,
                via="cli",
                action="token_add",
                origin=origin,
                detail=detail,
            )
        return token

    async def revoke(self, name: str, *, now: datetime, actor: str, origin: str | None) -> None:
        """Refuse `name`'s token from now on (its row stays, for the audit and `list`)."""
        async with self._store.engine.begin() as conn:
            found = await self._by_name(conn, name)
            if found is None:
                raise TokenError(f"no token named {name!r}")
            if found.revoked_at is not None:
                raise TokenError(f"the token {name!r} is revoked already")
            await conn.execute(
                update(api_tokens).where(api_tokens.c.id == found.id).values(revoked_at=now)
            )
            await self._audit.record_in(
                conn,
                at=now,
                actor=actor,
                via="cli",
                action="token_revoke",
                origin=origin,
                detail={"token": name},
            )

    async def all(self) -> list[TokenRecord]:
        """Every token ever added, by name."""
        async with self._store.engine.connect() as conn:
            rows = await conn.execute(select(api_tokens).order_by(api_tokens.c.name))
            return [_record(row) for row in rows]

    async def lookup(self, presented: str, *, now: datetime) -> TokenRecord | None:
        """The live (not revoked) token equal to `presented`; notes its use once a minute."""
        hashed = token_hash(presented)
        async with self._store.engine.connect() as conn:
            row = (
                await conn.execute(select(api_tokens).where(api_tokens.c.token_hash == hashed))
            ).first()
        # The hash is looked up by equality: it reveals nothing about the token by its timing.
        if row is None or row.revoked_at is not None:
            return None
        found = _record(row)
        if found.last_used_at is None or now - found.last_used_at >= TOUCH_EVERY:
            async with self._store.engine.begin() as conn:
                await conn.execute(
                    update(api_tokens).where(api_tokens.c.id == found.id).values(last_used_at=now)
                )
        return found

    async def any_live(self) -> bool:
        """Whether any token is not revoked (the API and page are open to someone)."""
        async with self._store.engine.connect() as conn:
            query = select(api_tokens.c.id).where(api_tokens.c.revoked_at.is_(None)).limit(1)
            return (await conn.execute(query)).first() is not None

    async def _by_name(self, conn: AsyncConnection, name: str) -> TokenRecord | None:
        row = (await conn.execute(select(api_tokens).where(api_tokens.c.name == name))).first()
        return None if row is None else _record(row)
