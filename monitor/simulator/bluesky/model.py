"""The fake network's records: accounts, posts, reposts and likes, and their JSON views."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# Facets as the Bluesky app detects them in the text it posts ([FACET]).
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9.-]+\.[A-Za-z]+)")
_TAG = re.compile(r"(?<![\w#])#([^\s#.,!?;:()]+)")


@dataclass(frozen=True, kw_only=True)
class Account:
    """A Bluesky account on this PDS (or on the network, for other authors)."""

    did: str
    handle: str
    display_name: str
    password: str | None  # an app password; None: it cannot sign in here


@dataclass(kw_only=True)
class FakePost:
    """An app.bsky.feed.post record with what the AppView indexed of it."""

    uri: str
    cid: str
    author: Account
    text: str
    created_at: datetime
    indexed_at: datetime
    facets: list[dict[str, Any]]
    tags: list[str]  # the record's own `tags` (not in the text)
    reply: tuple[FakePost, FakePost] | None = None  # (root, parent)
    quote: FakePost | None = None
    deleted: bool = False

    @property
    def sort_at(self) -> datetime:
        """What the AppView sorts and filters by: the earlier of createdAt and indexedAt."""
        return min(self.created_at, self.indexed_at)

    def record(self) -> dict[str, Any]:
        """The record as its author's client wrote it."""
        record: dict[str, Any] = {
            "$type": "app.bsky.feed.post",
            "text": self.text,
            "createdAt": wire_time(self.created_at),
            "langs": ["en"],
        }
        if self.facets:
            record["facets"] = self.facets
        if self.tags:
            record["tags"] = self.tags
        if self.reply is not None:
            root, parent = self.reply
            record["reply"] = {"root": root.ref(), "parent": parent.ref()}
        if self.quote is not None:
            record["embed"] = {"$type": "app.bsky.embed.record", "record": self.quote.ref()}
        return record

    def ref(self) -> dict[str, str]:
        """A com.atproto.repo.strongRef to this post."""
        return {"uri": self.uri, "cid": self.cid}


@dataclass(frozen=True, kw_only=True)
class Interaction:
    """A like, repost or follow: notifies, but is not a post."""

    uri: str
    reason: str  # like, repost, follow
    author: Account
    subject: FakePost | None  # None for a follow
    target: Account
    at: datetime


@dataclass(kw_only=True)
class Network:
    """Everything the fake AppView has indexed."""

    accounts: dict[str, Account] = field(default_factory=dict)  # by DID
    posts: dict[str, FakePost] = field(default_factory=dict)  # by uri
    interactions: list[Interaction] = field(default_factory=list)
    _clock_id: int = 0

    def account(self, handle_or_did: str) -> Account:
        """An account by handle or DID; KeyError names it when unknown."""
        key = handle_or_did.lstrip("@").lower()
        for account in self.accounts.values():
            if key in (account.did, account.handle.lower()):
                return account
        raise KeyError(f"no account {handle_or_did!r}")

    def add_account(self, handle: str, *, password: str | None, display_name: str) -> Account:
        """Register an account; its DID is derived from the handle."""
        digest = hashlib.sha256(handle.encode()).digest()
        did = "did:plc:" + _base32(digest)[:24]
        account = Account(did=did, handle=handle, display_name=display_name, password=password)
        self.accounts[did] = account
        return account

    def new_uri(self, did: str, collection: str, at: datetime) -> str:
        """A fresh record URI whose rkey is a TID of `at` ([TID])."""
        self._clock_id = (self._clock_id + 1) % 1024
        micros = int(at.timestamp() * 1_000_000)
        return f"at://{did}/{collection}/{tid(micros, self._clock_id)}"

    def replies_to(self, post: FakePost) -> list[FakePost]:
        """Live replies whose parent is `post`, oldest first."""
        return sorted(
            (
                p
                for p in self.posts.values()
                if not p.deleted and p.reply is not None and p.reply[1] is post
            ),
            key=lambda p: p.sort_at,
        )


def facets_of(text: str, network: Network) -> list[dict[str, Any]]:
    """Mention facets (of known handles) and tag facets, with UTF-8 byte offsets."""
    facets: list[dict[str, Any]] = []
    for match in _MENTION.finditer(text):
        try:
            did = network.account(match.group(1)).did
        except KeyError:
            continue  # the app links only handles that resolve
        facets.append(_facet(text, match, {"$type": "app.bsky.richtext.facet#mention", "did": did}))
    for match in _TAG.finditer(text):
        facets.append(
            _facet(text, match, {"$type": "app.bsky.richtext.facet#tag", "tag": match.group(1)})
        )
    return facets


def profile(account: Account) -> dict[str, Any]:
    """app.bsky.actor.defs#profileViewBasic."""
    return {
        "did": account.did,
        "handle": account.handle,
        "displayName": account.display_name,
        "labels": [],
        "createdAt": "2023-04-01T00:00:00.000Z",
    }


def wire_time(moment: datetime) -> str:
    """UTC with milliseconds and 'Z', as the Bluesky app writes createdAt."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def tid(micros: int, clock_id: int) -> str:
    """A TID: 53 bits of microseconds and 10 of clock id, base32-sortable, 13 characters."""
    value = (micros << 10) | clock_id
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def cid_of(uri: str, text: str) -> str:
    """A CIDv1 lookalike (base32 'bafyrei...'): content-derived, stable for the same record."""
    return "bafyrei" + _base32(hashlib.sha256(f"{uri}\n{text}".encode()).digest())[:52]


def _base32(data: bytes) -> str:
    value = int.from_bytes(data, "big")
    out = []
    while value:
        out.append("abcdefghijklmnopqrstuvwxyz234567"[value & 31])
        value >>= 5
    return "".join(out)


def _facet(text: str, match: re.Match[str], feature: dict[str, str]) -> dict[str, Any]:
    start = len(text[: match.start()].encode())
    end = start + len(match.group(0).encode())
    return {"index": {"byteStart": start, "byteEnd": end}, "features": [feature]}
