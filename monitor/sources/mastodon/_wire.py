"""Mastodon's JSON into our terms: statuses, HTML content, Link and rate-limit headers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Any, ClassVar

from monitor.sources.interaction import tag_key
from monitor.sources.wire import as_list, parse_time

Raw = Mapping[str, Any]

# RFC 8288 link values as Mastodon writes them: `<url>; rel="next", <url>; rel="prev"`.
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([^",;]+)"?')


class Malformed(ValueError):
    """A status without a field we need (id, created_at, account)."""


@dataclass(frozen=True, kw_only=True)
class Status:
    """One status as the source uses it (a boost already replaced by its original)."""

    id: str
    created_at: datetime
    account_id: str
    acct: str  # "user" on the server read, "user@domain" for remote accounts
    text: str
    tags: frozenset[str]  # as tag_key gives them
    mention_ids: frozenset[str]
    mention_accts: frozenset[str]  # lower case
    in_reply_to_id: str | None
    in_reply_to_account_id: str | None
    url: str | None


def original(raw: Raw) -> Raw:
    """The status itself, or for a boost the boosted original (a boost is never counted)."""
    boosted = raw.get("reblog")
    return boosted if isinstance(boosted, dict) else raw


def parse_status(raw: Raw) -> Status:
    """A status from its JSON; boosts must be unwrapped first (see `original`)."""
    status_id = raw.get("id")
    if not isinstance(status_id, str) or not status_id:
        raise Malformed("Mastodon returned a status without an id")
    created = parse_time(raw.get("created_at"))
    if created is None:
        raise Malformed(f"status {status_id} has an unreadable created_at")
    account = raw.get("account")
    account_id = account.get("id") if isinstance(account, dict) else None
    acct = account.get("acct") if isinstance(account, dict) else None
    if not isinstance(account_id, str) or not isinstance(acct, str):
        raise Malformed(f"status {status_id} has no account")
    mentions = [m for m in as_list(raw.get("mentions")) if isinstance(m, dict)]
    text = html_to_text(str(raw.get("content") or ""))
    warning = raw.get("spoiler_text")
    if isinstance(warning, str) and warning.strip():
        # A content warning is part of what the author wrote (it may hold the question).
        text = f"{warning.strip()}\n\n{text}" if text else warning.strip()
    url = raw.get("url") or raw.get("uri")
    return Status(
        id=status_id,
        created_at=created,
        account_id=account_id,
        acct=acct,
        text=text,
        tags=frozenset(
            tag_key(t["name"])
            for t in as_list(raw.get("tags"))
            if isinstance(t, dict) and isinstance(t.get("name"), str)
        ),
        mention_ids=frozenset(str(m["id"]) for m in mentions if m.get("id") is not None),
        mention_accts=frozenset(
            m["acct"].lower() for m in mentions if isinstance(m.get("acct"), str)
        ),
        in_reply_to_id=_optional_id(raw.get("in_reply_to_id")),
        in_reply_to_account_id=_optional_id(raw.get("in_reply_to_account_id")),
        url=url if isinstance(url, str) and url else None,
    )


def status_seq(status_id: str) -> int:
    """Order inside a thread: snowflake ids grow with time and fit 64 bits."""
    if status_id.isascii() and status_id.isdigit() and len(status_id) <= 18:
        return int(status_id)
    return 0


def id_order(status_id: str) -> int:
    """An id as a number, for comparisons ("Paginating by ID": never compare the strings)."""
    return int(status_id) if status_id.isascii() and status_id.isdigit() else -1


def links(header: str | None) -> dict[str, str]:
    """The Link header's URLs by rel ("next", "prev")."""
    return {rel: url for url, rel in _LINK.findall(header or "")}


def _optional_id(value: object) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


class _TextExtractor(HTMLParser):
    """Plain text of a status: paragraphs and <br /> as line breaks, every span's text kept."""

    # Mastodon shortens links with <span class="invisible"> parts; their text is kept, so the
    # plain text carries the whole URL.
    BLOCKS: ClassVar[frozenset[str]] = frozenset({"p", "blockquote", "li", "ul", "ol", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(content: str) -> str:
    """A status's HTML `content` as plain text."""
    extractor = _TextExtractor()
    extractor.feed(content)
    extractor.close()
    lines = [" ".join(line.split()) for line in "".join(extractor.parts).split("\n")]
    text: list[str] = []
    for line in lines:
        if line or (text and text[-1]):
            text.append(line)
    return "\n".join(text).strip().replace("\x00", "")
