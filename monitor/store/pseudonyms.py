"""Consumers' ids and names as keyed hashes (HMAC-SHA256), and the key when none is configured."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from monitor.domain import Message
from monitor.store.repository import Store
from monitor.store.tables import privacy_keys

PREFIX = "p:"  # tells a pseudonym from a platform's own id or name at a glance
_HEX_CHARS = 32  # 128 bits: no two of a brand's consumers share one
_KEY_NAME = "pseudonym"
_PSEUDONYM = re.compile(rf"^{PREFIX}[0-9a-f]{{{_HEX_CHARS}}}$")


def is_pseudonym(value: str) -> bool:
    """Whether the value is one of our pseudonyms (as the report and an export show them)."""
    return _PSEUDONYM.match(value) is not None


@dataclass(frozen=True)
class Pseudonyms:
    """The same person always gets the same pseudonym under one key; without the key it cannot
    be turned back into the id or name, nor be recomputed from a guessed one."""

    key: bytes

    def of(self, value: str | None) -> str | None:
        """The pseudonym of an author id or name (None stays None; a pseudonym stays itself)."""
        if value is None or is_pseudonym(value):
            return value
        digest = hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:_HEX_CHARS]


@dataclass(frozen=True)
class MessagePrivacy:
    """How a source's messages are stored: consumers pseudonymised, text only if wanted."""

    pseudonyms: Pseudonyms
    store_text: bool = True

    def apply(self, message: Message) -> Message:
        """The message as it may be stored. Brand messages keep their author: staff acting in
        their role, named in the report's per-moderator view."""
        # A hashtag post that is only counted (chatter, a partner's broadcast) needs no text:
        # the campaign report counts it, nobody reads or answers it.
        counted_only = message.kind is not None and not (message.is_brand or message.opens_item)
        text = message.text if self.store_text and not counted_only else ""
        if message.is_brand:
            return message if text == message.text else replace(message, text=text)
        return replace(
            message,
            author_id=self.pseudonyms.of(message.author_id),
            author_name=self.pseudonyms.of(message.author_name),
            text=text,
        )


async def load_pseudonyms(store: Store, configured: str | None) -> Pseudonyms:
    """The configured key, else the one generated at first use and kept in the database."""
    if configured:
        return Pseudonyms(configured.encode())
    query = select(privacy_keys.c.value).where(privacy_keys.c.name == _KEY_NAME)
    async with store.engine.begin() as conn:
        found = (await conn.execute(query)).scalar_one_or_none()
        if found is not None:
            return Pseudonyms(bytes.fromhex(found))
    try:
        async with store.engine.begin() as conn:
            await conn.execute(
                insert(privacy_keys).values(name=_KEY_NAME, value=secrets.token_hex(32))
            )
    except IntegrityError:
        pass  # another instance generated it first: its key is the one
    async with store.engine.connect() as conn:
        return Pseudonyms(bytes.fromhex((await conn.execute(query)).scalar_one()))
