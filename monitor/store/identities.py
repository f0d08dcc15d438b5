"""Platform ids that name a person, and their pseudonymised forms (docs/data-protection.md).

Most platforms' ids name a post, not its author. Two do name the person: Messenger keys a
conversation by the person's page-scoped id (the thread id is their PSID), and a Bluesky
post's address `at://did:plc:…/app.bsky.feed.post/…` holds its author's DID. An erasure (and
a purge of a whole conversation) replaces that part by its pseudonym in every id stored;
`mask_known` then maps a re-read of the same posts onto the stored rows, so nothing is
stored twice and no id comes back in the clear.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.domain import Batch, Message
from monitor.store.pseudonyms import Pseudonyms, is_pseudonym
from monitor.store.repository import chunked
from monitor.store.tables import items, messages

# Messenger: a conversation is keyed by the person's page-scoped id (sources/messenger).
PERSON_THREADS = frozenset({"messenger"})
# Bluesky: an at:// URI's authority is its author's DID (atproto's at-uri scheme).
AUTHOR_URIS = frozenset({"bluesky"})
_AT = "at://"
ID_FIELDS = ("platform_id", "thread_id", "parent_id")


def names_people(platform: str) -> bool:
    """Whether the platform's ids can name a person."""
    return platform in PERSON_THREADS or platform in AUTHOR_URIS


def person_in(platform: str, field: str, value: str | None) -> str | None:
    """The part of an id that names a person (a PSID, a DID); None when it names nobody."""
    if not value:
        return None
    if platform in PERSON_THREADS and field == "thread_id":
        return None if is_pseudonym(value) else value
    if platform in AUTHOR_URIS and value.startswith(_AT):
        authority = value[len(_AT) :].split("/", 1)[0]
        return authority if authority.startswith("did:") else None
    return None


def people_named_by(platform: str, platform_id: str, thread_id: str, is_brand: bool) -> set[str]:
    """Whom a message names in its ids: its conversation's person, or (a consumer's) its author."""
    if platform in PERSON_THREADS:
        person = person_in(platform, "thread_id", thread_id)
    else:
        person = None if is_brand else person_in(platform, "platform_id", platform_id)
    return {person} if person else set()


def masked(platform: str, field: str, value: str | None, person: str, pseudonym: str) -> str | None:
    """The id with `person` replaced by its pseudonym (unchanged when it does not name them)."""
    if value is None or person_in(platform, field, value) != person:
        return value
    if platform in PERSON_THREADS:
        return pseudonym
    return _AT + pseudonym + value[len(_AT) + len(person) :]


def has_pseudonym(value: str) -> bool:
    """Whether an id had a person replaced by a pseudonym (no platform can read it any more)."""
    if is_pseudonym(value):
        return True
    return value.startswith(_AT) and is_pseudonym(value[len(_AT) :].split("/", 1)[0])


def readable(thread_ids: frozenset[str]) -> frozenset[str]:
    """The threads a platform can be asked for: not those stored under a pseudonym (their
    person erased, or their conversation purged), which no platform knows."""
    return frozenset(t for t in thread_ids if not has_pseudonym(t))


async def mask_people(
    conn: AsyncConnection,
    source: str,
    platform: str,
    people: Collection[str],
    pseudonyms: Pseudonyms,
    *,
    threads: Collection[str] | None = None,
) -> int:
    """Replace each person's id by its pseudonym in every stored id of the source (only in
    `threads`, when given); returns the messages changed."""
    changed = 0
    for person in sorted(people):
        pseudonym = pseudonyms.of(person) or person
        named = or_(*(messages.c[f].contains(person, autoescape=True) for f in ID_FIELDS))
        query = select(messages.c.id, *(messages.c[f] for f in ID_FIELDS)).where(
            messages.c.source == source, named
        )
        for chunk in chunked(threads) if threads is not None else [None]:
            scoped = query if chunk is None else query.where(messages.c.thread_id.in_(chunk))
            for row in (await conn.execute(scoped)).all():
                values = {
                    f: masked(platform, f, row._mapping[f], person, pseudonym) for f in ID_FIELDS
                }
                values = {f: v for f, v in values.items() if v != row._mapping[f]}
                if values:
                    await conn.execute(
                        update(messages).where(messages.c.id == row.id).values(values)
                    )
                    changed += 1
                    if "thread_id" in values:
                        await conn.execute(
                            update(items)
                            .where(items.c.message_id == row.id)
                            .values(thread_id=values["thread_id"])
                        )
    return changed


async def mask_known(
    conn: AsyncConnection, source: str, platform: str, batch: Batch, pseudonyms: Pseudonyms
) -> Batch:
    """The batch with each id that is stored pseudonymised (its person erased, or their
    conversation purged) masked the same way; every other id stays as the platform gave it."""
    threads = {m.thread_id for m in batch.messages}
    threads |= {*batch.complete_threads, *batch.deleted_threads}
    posts = {v for m in batch.messages for v in (m.platform_id, m.parent_id) if v}
    posts |= {*batch.removed, *batch.hidden_changes}
    posts |= {v for values in batch.complete_threads.values() for v in values}
    of: dict[str, str] = {}  # one keyed hash per person, however many posts they wrote
    forms: dict[str, str] = {}
    for field, values in (("thread_id", threads), ("platform_id", posts)):
        for value in values:
            person = person_in(platform, field, value)
            if person is not None:
                if person not in of:
                    of[person] = pseudonyms.of(person) or person
                form = masked(platform, field, value, person, of[person])
                if form is not None and form != value:
                    forms[value] = form
    if not forms:
        return batch
    found: set[str] = set()
    for chunk in chunked(sorted(set(forms.values()))):
        query = select(messages.c.platform_id, messages.c.thread_id).where(
            messages.c.source == source,
            or_(messages.c.platform_id.in_(chunk), messages.c.thread_id.in_(chunk)),
        )
        for row in await conn.execute(query):
            found.update(row)
    known = {value: form for value, form in forms.items() if form in found}
    return _masked_batch(batch, known) if known else batch


def _masked_batch(batch: Batch, known: dict[str, str]) -> Batch:
    def mask(value: str) -> str:
        return known.get(value, value)

    def message(m: Message) -> Message:
        changed: dict[str, Any] = {
            f: known[v] for f in ID_FIELDS if (v := getattr(m, f)) is not None and v in known
        }
        return replace(m, **changed) if changed else m

    return replace(
        batch,
        messages=tuple(map(message, batch.messages)),
        removed=frozenset(map(mask, batch.removed)),
        hidden_changes={mask(k): v for k, v in batch.hidden_changes.items()},
        complete_threads={
            mask(t): frozenset(map(mask, v)) for t, v in batch.complete_threads.items()
        },
        deleted_threads=frozenset(map(mask, batch.deleted_threads)),
    )
