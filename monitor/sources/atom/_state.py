"""What a poll of a board keeps in the cursor and gathers while it reads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

from monitor.domain import Skipped
from monitor.sources.atom._feed import FeedEntry, feed_time
from monitor.sources.base import FetchRecord, FetchRequest
from monitor.sources.wire import as_list

# Post -> topic entries kept for boards whose links carry no topic id (newest posts win).
TOPIC_MAP_LIMIT = 2000


@dataclass(kw_only=True)
class Cursor:
    """What survives between polls (JSON-safe when dumped); tolerant of junk when loaded."""

    since: datetime
    window: int = 0  # the most entries any post feed of the board has shown
    validators: dict[str, dict[str, str]] = field(default_factory=dict)
    first_post: dict[int, int] = field(default_factory=dict)
    topic_of: dict[int, int] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)
    # (first post, topic or None) of the newest topics, from the board's "new topics" feed.
    new_topics: list[tuple[int, int | None]] = field(default_factory=list)

    @classmethod
    def load(cls, raw: Mapping[str, Any], default_since: datetime) -> Cursor:
        """Read a saved cursor; anything unreadable falls back to a fresh start for that part."""
        since = feed_time(raw.get("since")) if isinstance(raw.get("since"), str) else None
        window = raw.get("window")
        validators = raw.get("validators")
        return cls(
            since=since or default_since,
            window=window if digits(window) and isinstance(window, int) else 0,
            validators={
                str(key): {k: v for k, v in value.items() if isinstance(v, str)}
                for key, value in (validators.items() if isinstance(validators, dict) else [])
                if isinstance(value, dict)
            },
            first_post=_int_map(raw.get("first_post")),
            topic_of=_int_map(raw.get("topic_of")),
            gone={int(t) for t in as_list(raw.get("gone")) if digits(t)},
            new_topics=[
                (int(pair[0]), int(pair[1]) if digits(pair[1]) else None)
                for pair in as_list(raw.get("new_topics"))
                if isinstance(pair, list) and len(pair) == 2 and digits(pair[0])
            ],
        )

    def dump(self) -> dict[str, Any]:
        """The JSON form stored with the batch."""
        newest = sorted(self.topic_of, reverse=True)[:TOPIC_MAP_LIMIT]
        return {
            "since": self.since.isoformat(),
            "window": self.window,
            "validators": self.validators,
            "first_post": {str(t): p for t, p in sorted(self.first_post.items())},
            "topic_of": {str(p): self.topic_of[p] for p in sorted(newest)},
            "gone": sorted(self.gone),
            "new_topics": [list(pair) for pair in self.new_topics],
        }


@dataclass(kw_only=True)
class Todo:
    """What a poll still has to read; kept in the cursor's `resume` part when it stops early."""

    # A poll reads the forum feeds, then the topic feeds of what they listed (plus the watched
    # and active topics), then looks up posts linked without a topic id, then the "new topics"
    # feed. A throttle or transient failure stops it where it is; the next fetch finishes the
    # rest before starting a new poll, and asks for nothing the stopped one already read.

    forums: list[int]  # forum feeds not read yet
    topics: list[int]  # topic feeds not read yet, in order
    planned: bool = False  # `topics` holds every topic of the poll (all forum feeds were read)
    lookups: list[int] = field(default_factory=list)  # posts whose topic is still unknown
    new_topics: bool = False  # the "new topics" feed is still to be read
    read: set[str] = field(default_factory=set)  # feeds read by the poll's earlier fetches
    # The topic whose read failed transiently last time (5xx, cut-off or unparseable feed):
    # read first and alone; failing again while the board answers, it is skipped.
    failed: int | None = None

    @classmethod
    def load(cls, cursor: Mapping[str, Any]) -> Todo | None:
        """The rest of an interrupted poll, or None (none, or unreadable: start afresh)."""
        raw = cursor.get("resume")
        if not isinstance(raw, dict):
            return None
        failed = raw.get("failed")
        return cls(
            forums=_ints(raw.get("forums")),
            topics=_ints(raw.get("topics")),
            planned=raw.get("planned") is True,
            lookups=_ints(raw.get("lookups")),
            new_topics=raw.get("new_topics") is True,
            read={str(key) for key in as_list(raw.get("read"))},
            failed=int(failed) if digits(failed) else None,
        )

    def dump(self, read_now: Iterable[str]) -> dict[str, Any]:
        """The JSON form, the failed topic first; `read_now`: feeds this fetch read."""
        first = [self.failed] if self.failed in self.topics else []
        return {
            "forums": self.forums,
            "topics": first + [t for t in self.topics if t != self.failed],
            "planned": self.planned,
            "lookups": self.lookups,
            "new_topics": self.new_topics,
            "read": sorted(self.read | set(read_now)),
            "failed": self.failed,
        }


@dataclass(kw_only=True)
class Run(FetchRecord):
    """What one fetch accumulates across its requests (mutable on purpose)."""

    cursor: Cursor
    todo: Todo
    conditional: bool
    now: datetime
    request: FetchRequest | None = None  # told how many topics are left (progress)
    topics_done: int = 0
    not_modified: int = 0
    # A feed of this board answered 200/304: a 404/403 elsewhere is about that topic only,
    # and what this fetch read is worth keeping if a throttle stops it.
    board_answers: bool = False
    entries: dict[int, tuple[int, FeedEntry]] = field(default_factory=dict)
    unresolved: dict[int, FeedEntry] = field(default_factory=dict)
    # Topic feeds read in full (every entry had a post id): their post ids and entry count.
    topic_reads: dict[int, tuple[frozenset[int], int]] = field(default_factory=dict)
    topic_feeds: set[int] = field(default_factory=set)  # topics whose feed answered 200
    missing: set[int] = field(default_factory=set)
    forbidden: set[int] = field(default_factory=set)
    read_feeds: set[str] = field(default_factory=set)
    # Each topic's first post (parent of every reply), once known.
    first_posts: dict[int, int] = field(default_factory=dict)

    def skip_entry(self, where: str, entry: FeedEntry) -> None:
        """An entry without a post id (or a post without a date) cannot be used: skipped."""
        if entry.post_id is None:
            key = f"entry:{_entry_digest(entry)}"
            detail = f"{where}: an entry without a post id (link {entry.link!r})"
        else:
            key = f"post:{entry.post_id}"
            detail = f"{where}: post {entry.post_id} without <published> or <updated>"
        self.skipped.setdefault(key, Skipped(reason="malformed", detail=detail))


def digits(value: object) -> TypeGuard[int | str]:
    """An int, or a string of digits (ids come as both from JSON and the store)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def _ints(raw: object) -> list[int]:
    return [int(value) for value in as_list(raw) if digits(value)]


def _entry_digest(entry: FeedEntry) -> str:
    """A stable name for an entry without a post id: the same in every feed that shows it."""
    seen = f"{entry.author}\n{entry.published or entry.updated}\n{entry.html}"
    return hashlib.sha1(seen.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]


def _int_map(raw: object) -> dict[int, int]:
    if not isinstance(raw, dict):
        return {}
    return {
        int(key): int(value)
        for key, value in raw.items()
        if digits(key) and isinstance(value, int) and not isinstance(value, bool)
    }
