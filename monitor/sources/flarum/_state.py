"""What a poll of a Flarum forum keeps in the cursor and gathers while it reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.domain import Message
from monitor.sources.base import FetchRecord, FetchRequest
from monitor.sources.flarum._jsonapi import parse_flarum_time
from monitor.sources.wire import as_list


@dataclass(kw_only=True)
class Listing:
    """The discussion list being read page by page, newest first (mutable on purpose)."""

    # The query of the page to read next (None: the first page). Only the query is kept: the
    # request goes to the configured URL, whatever URL the cursor was written for.
    next: str | None = None
    found: dict[str, datetime] = field(default_factory=dict)  # id -> lastPostedAt, in order
    done: bool = False
    pages_read: int = 0  # by this fetch

    @classmethod
    def load(cls, raw: object) -> Listing | None:
        """A saved listing, or None when there is none (or it is unreadable)."""
        if not isinstance(raw, dict):
            return None
        found: dict[str, datetime] = {}
        for pair in as_list(raw.get("found")):
            when = parse_flarum_time(pair[1]) if isinstance(pair, list) and len(pair) == 2 else None
            if when is not None:
                found[str(pair[0])] = when
        next_url = raw.get("next")
        return cls(next=next_url if isinstance(next_url, str) else None, found=found)

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept in the cursor."""
        return {"next": self.next, "found": [[k, v.isoformat()] for k, v in self.found.items()]}


@dataclass(kw_only=True)
class Todo:
    """What a poll still has to read; kept in the cursor's `resume` part when it stops early."""

    # A poll checks the key, reads the discussion list down to the cursor, then every listed
    # and active discussion. A throttle or a transient failure stops it where it is: the list
    # page refused, or the discussions not read yet. The next fetch does that first and asks
    # for nothing the stopped one already had.

    listing: Listing | None  # None: the list is read (by this fetch or an earlier one)
    threads: list[str] = field(default_factory=list)  # discussions not read yet, in order
    advance: dict[str, Any] | None = None  # the cursor once every discussion is read
    # The discussion whose read failed transiently last time (a 5xx, a cut-off body): read
    # first and alone; failing again while the forum answers, it is skipped.
    failed: str | None = None

    @classmethod
    def load(cls, cursor: Mapping[str, Any]) -> Todo | None:
        """The saved rest of a poll, or None (none, or unreadable: start afresh)."""
        # A `resume` written before the listing and `failed` parts existed ({"threads",
        # "advance"}) loads as a poll whose list was read.
        raw = cursor.get("resume")
        if not isinstance(raw, dict):
            return None
        listing = Listing.load(raw.get("listing"))
        advance = raw.get("advance")
        threads = raw.get("threads")
        if listing is None and not (isinstance(threads, list) and isinstance(advance, dict)):
            return None
        failed = raw.get("failed")
        return cls(
            listing=listing,
            threads=[str(t) for t in as_list(threads)],
            advance=advance if isinstance(advance, dict) else None,
            failed=str(failed) if isinstance(failed, str | int) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept in the cursor, the failed discussion first."""
        first = [self.failed] if self.failed in self.threads else []
        return {
            "listing": None if self.listing is None else self.listing.to_json(),
            "threads": first + [t for t in self.threads if t != self.failed],
            "advance": self.advance,
            "failed": self.failed,
        }


@dataclass(kw_only=True)
class FetchState(FetchRecord):
    """What one fetch accumulates across its requests (mutable on purpose)."""

    documents: int = 0  # answered with a JSON:API document: the forum is up and serving
    finished: int = 0  # discussions read, gone or skipped
    request: FetchRequest | None = None  # told how many discussions are left (progress)
    messages: list[Message] = field(default_factory=list)
    complete: dict[str, frozenset[str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)


def cursor_time(cursor: Mapping[str, Any], key: str) -> datetime | None:
    return parse_flarum_time(cursor.get(key))


def id_order(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (0, value)
