"""What a poll of a Discourse site keeps in the cursor and gathers while it reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.domain import Message, Skipped
from monitor.sources.base import FetchRecord, FetchRequest
from monitor.sources.discourse._wire import ListedTopic, parse_discourse_time, wire_time
from monitor.sources.wire import is_int


@dataclass(frozen=True, kw_only=True)
class ListCursor:
    """How far the topic lists were read: the newest `bumped_at` and the topics bumped then."""

    since: datetime
    at_since: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: Mapping[str, Any], default: datetime) -> ListCursor:
        """The saved cursor, or one starting at `default` (the backfill start)."""
        value = raw.get("bumped_since")
        ids = raw.get("bumped_ids")
        try:
            since = parse_discourse_time(value) if isinstance(value, str) else None
        except ValueError:
            since = None
        if since is None:
            return cls(since=default)
        at_since = frozenset(str(i) for i in ids) if isinstance(ids, list) else frozenset()
        return cls(since=since, at_since=at_since)

    def is_new(self, topic: ListedTopic) -> bool:
        """Bumped after the cursor (a tie counts unless that topic was seen at that instant)."""
        return topic.bumped_at > self.since or (
            topic.bumped_at == self.since and topic.id not in self.at_since
        )

    def advanced(self, topics: Iterable[ListedTopic]) -> ListCursor:
        """The cursor after reading `topics`."""
        listed = list(topics)
        newest = max((t.bumped_at for t in listed), default=self.since)
        if newest < self.since:
            return self
        at_newest = {t.id for t in listed if t.bumped_at == newest}
        if newest == self.since:
            return ListCursor(since=newest, at_since=self.at_since | at_newest)
        return ListCursor(since=newest, at_since=frozenset(at_newest))

    def to_json(self) -> dict[str, Any]:
        """The cursor as the store keeps it."""
        return {"bumped_since": wire_time(self.since), "bumped_ids": sorted(self.at_since)}


@dataclass(kw_only=True)
class FetchState(FetchRecord):
    """What one fetch accumulates across its requests (mutable on purpose)."""

    # Requests the forum answered (a page, or a refusal of one object): it is up and serving.
    answered: int = 0


@dataclass(kw_only=True)
class Listing:
    """Reading the topic lists: the list URLs still to read and the topics listed so far."""

    # The first of `paths` is where to go on.
    paths: list[str]
    found: dict[str, ListedTopic] = field(default_factory=dict)
    pages_read: int = 0  # by this fetch

    @property
    def done(self) -> bool:
        """Every list read to `since`."""
        return not self.paths

    def to_json(self) -> dict[str, Any]:
        """The form the cursor keeps."""
        return {
            "paths": list(self.paths),
            "found": [[t.id, wire_time(t.bumped_at), t.pinned] for t in self.found.values()],
        }

    @classmethod
    def load(cls, raw: Any) -> Listing | None:
        """A saved listing, or None when absent or unreadable."""
        if not isinstance(raw, dict) or not isinstance(raw.get("paths"), list):
            return None
        found: dict[str, ListedTopic] = {}
        for entry in raw.get("found") or []:
            try:
                topic_id, bumped, pinned = entry
                found[str(topic_id)] = ListedTopic(
                    id=str(topic_id),
                    bumped_at=parse_discourse_time(str(bumped)),
                    pinned=bool(pinned),
                )
            except (TypeError, ValueError):
                return None
        return cls(paths=[str(p) for p in raw["paths"]], found=found)


@dataclass(frozen=True, kw_only=True)
class Resume:
    """The rest of an interrupted poll, kept in the cursor: the next fetch does it first."""

    listing: Listing | None  # topic lists not read to the end yet
    topics: tuple[str, ...]  # listed topics (and rechecks) not read yet, in order
    advance: dict[str, Any] | None  # the list cursor to apply once the topics are read
    # The first of `topics`, when its last read failed transiently while the forum answered:
    # failing again gets it skipped instead of stopping every poll.
    failed: str | None = None

    @classmethod
    def load(cls, cursor: Mapping[str, Any]) -> Resume | None:
        """The saved rest of a poll, or None (none, or unreadable: start afresh)."""
        # Cursors from before `failed` load as they are; a `partial` part (posts of a topic read
        # part-way, from an earlier version) is ignored: that topic is simply read again whole.
        raw = cursor.get("resume")
        if not isinstance(raw, dict) or not isinstance(raw.get("topics"), list):
            return None
        listing = Listing.load(raw.get("listing"))
        advance = raw.get("advance")
        if listing is None and not isinstance(advance, dict):
            return None
        failed = raw.get("failed")
        return cls(
            listing=listing,
            topics=tuple(str(t) for t in raw["topics"]),
            advance=advance if isinstance(advance, dict) else None,
            failed=str(failed) if isinstance(failed, str | int) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The form the cursor keeps."""
        return {
            "listing": None if self.listing is None else self.listing.to_json(),
            "topics": list(self.topics),
            "advance": self.advance,
            "failed": self.failed,
        }


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What a fetch reads: the topics, and the list cursor to apply once they are read."""

    topics: tuple[str, ...]
    advance: dict[str, Any] | None
    listing: Listing | None  # None: the lists were read by an earlier fetch

    @property
    def listed(self) -> bool:
        """The topic lists are read to the end (by this fetch or an earlier one)."""
        return self.listing is None or self.listing.done


@dataclass(kw_only=True)
class Unfinished:
    """A topic being read: what came so far and the chunks still to ask for (mutable on purpose)."""

    # When a refusal cuts a topic's read short, this stays in the source's memory (never in the
    # cursor, never in a batch: a batch has whole topics only) and the next fetch asks only for
    # the chunks left, so no answered request is made again. After a restart, or once older
    # than a re-check interval, the topic is read again from its start.

    topic_id: str
    at: datetime  # when its first chunk came
    slug: str
    stream: list[int]
    posts: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    # Posts without an id cannot be placed in the stream: skipped as malformed.
    without_id: list[Mapping[str, Any]] = field(default_factory=list)
    chunks: list[list[int]] = field(default_factory=list)

    def collect(self, posts: Iterable[Mapping[str, Any]]) -> None:
        """Keep posts by id; set aside the ones without."""
        for post in posts:
            if is_int(post.get("id")):
                self.posts[post["id"]] = post
            else:
                self.without_id.append(post)


@dataclass(frozen=True, kw_only=True)
class TopicRead:
    """One topic read whole: its messages and, when its whole stream came, the posts alive."""

    messages: list[Message]
    alive: frozenset[str] | None  # None: not every post came, so nothing may be tombstoned
    skipped: Mapping[str, Skipped]  # its malformed posts


@dataclass(kw_only=True)
class TopicsRun:
    """Reading a queue of topics, one whole topic after the other (mutable on purpose)."""

    left: list[str]
    request: FetchRequest | None = None  # told how many topics are left (progress)
    failed: str | None = None  # see Resume.failed
    struck: bool = False  # this fetch noted a topic's first failure (worth keeping in the cursor)
    messages: list[Message] = field(default_factory=list)
    complete: dict[str, frozenset[str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    read_at: dict[str, datetime] = field(default_factory=dict)

    def finish(self, topic_id: str, now: datetime) -> None:
        """The head of the queue is done with (read, gone or skipped)."""
        self.left.pop(0)
        self.read_at[topic_id] = now
        if self.request is not None:
            total = len(self.read_at) + len(self.left)
            self.request.progress(len(self.left), total, "topics")
        if self.failed == topic_id:
            self.failed = None

    def keep(self, topic_id: str, read: TopicRead) -> None:
        """A topic's messages, and its posts alive when the whole stream came."""
        self.messages.extend(read.messages)
        if read.alive is not None:
            self.complete[topic_id] = read.alive


def without_resume(cursor: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cursor.items() if k != "resume"}
