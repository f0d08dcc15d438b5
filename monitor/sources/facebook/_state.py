"""What a fetch of one Page gathers, and the rest of a poll kept in the cursor."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from monitor.domain import Skipped
from monitor.sources.base import RateLimited, SourceError
from monitor.sources.facebook._graph import Malformed, Raw


@dataclass(kw_only=True)
class FetchState:
    """What one fetch accumulates across its requests (mutable on purpose)."""

    # Bounds plain GETs in flight; batched ones need no bound (≤ 50 share one POST anyway).
    limiter: asyncio.Semaphore
    calls: int = 0  # Graph calls, as the rate limits count them (each batch entry is one)
    plain_requests: int = 0
    batches: set[int] = field(default_factory=set)  # the batch POSTs our calls travelled in
    usage_ratio: float | None = None
    regain_seconds: float | None = None
    skipped: dict[str, Skipped] = field(default_factory=dict)
    # Failures that ended a read part-way (what came before it is kept).
    partial_errors: list[SourceError] = field(default_factory=list)

    @property
    def http_requests(self) -> int:
        """HTTP requests: plain GETs plus the batch POSTs that carried our calls."""
        return self.plain_requests + len(self.batches)


@dataclass(frozen=True, kw_only=True)
class EdgeRead:
    """Items of an edge as far as they could be read, and where the rest starts."""

    items: list[Raw]
    resume_at: str | None = None  # the page that could not be read now
    error: SourceError | None = None  # why not


@dataclass(frozen=True, kw_only=True)
class Comments:
    """Comments of one thread as far as they could be read."""

    items: list[Raw]
    # The page that could not be read now (throttled, transient): the rest starts there.
    resume_at: str | None = None
    # False when the read began mid-thread (resumed): the items are not the whole thread.
    whole: bool = True

    @property
    def complete(self) -> bool:
        """Every comment of the thread is in `items` (so missing stored ones were deleted)."""
        return self.whole and self.resume_at is None


# A thread still to read, and the comments page to start at (None: its first page).
Pending = tuple[str, str | None]


@dataclass(kw_only=True)
class FeedRead:
    """Feed posts read so far, each with its comments."""

    posts: list[tuple[Raw, Comments | None]] = field(default_factory=list)
    next_url: str | None = None  # where the feed goes on, when a page could not be read now
    errors: list[SourceError] = field(default_factory=list)


@dataclass(kw_only=True)
class ThreadsRead:
    """Threads read (None: gone), and the ones to read on once Graph lets us."""

    found: dict[str, Comments | None] = field(default_factory=dict)
    not_started: list[Pending] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)

    def merge(self, other: ThreadsRead) -> None:
        """Add another read's results to this one."""
        self.found.update(other.found)
        self.not_started.extend(other.not_started)
        self.errors.extend(other.errors)


@dataclass(frozen=True, kw_only=True)
class Resume:
    """The rest of an interrupted poll, kept in the cursor: the next fetch does this first."""

    feed_next: str | None  # the feed page to read next (None: the feed was read to its end)
    threads: tuple[Pending, ...]  # threads still to read
    newest: int  # the newest post seen so far: the feed cursor once the rest is done
    newest_ids: tuple[str, ...]

    @classmethod
    def load(cls, cursor: Mapping[str, Any]) -> Resume | None:
        """The saved rest of a poll, or None (none saved, or unreadable: start afresh)."""
        raw = cursor.get("resume")
        if not isinstance(raw, dict):
            return None
        feed_next = raw.get("feed_next")
        threads = raw.get("threads")
        newest = raw.get("newest")
        newest_ids = raw.get("newest_ids")
        if (
            not (feed_next is None or isinstance(feed_next, str))
            or not isinstance(threads, list)
            or not isinstance(newest, int)
            or not isinstance(newest_ids, list)
        ):
            return None
        return cls(
            feed_next=feed_next,
            threads=tuple(load_pending(entry) for entry in threads),
            newest=newest,
            newest_ids=tuple(str(i) for i in newest_ids),
        )

    def to_json(self) -> dict[str, Any]:
        """The form the store keeps."""
        return {
            "feed_next": self.feed_next,
            "threads": [[post_id, url] for post_id, url in self.threads],
            "newest": self.newest,
            "newest_ids": list(self.newest_ids),
        }


def since_ids(cursor: Mapping[str, Any]) -> frozenset[str]:
    """Ids of the posts created at the cursor instant (the feed returns them again)."""
    value = cursor.get("feed_since_ids")
    if not isinstance(value, list):
        return frozenset()
    return frozenset(str(item) for item in value if isinstance(item, str | int))


def skip_malformed(
    state: FetchState, raw: Raw, err: Malformed, fallback_key: str | None = None
) -> None:
    value = raw.get("id")
    key = str(value) if isinstance(value, str | int) and str(value) else fallback_key
    # "post:" like every source: a post's id never rests a thread of the same number.
    state.skipped[f"post:{key or 'unknown'}"] = Skipped(reason="malformed", detail=str(err))


def wait_seconds(state: FetchState, errors: Sequence[SourceError]) -> float | None:
    """The longest wait Graph asked for: estimated_time_to_regain_access, or a Retry-After."""
    waits = [e.retry_after for e in errors if isinstance(e, RateLimited) and e.retry_after]
    if state.regain_seconds is not None:
        waits.append(state.regain_seconds)
    return max(waits) if waits else None


def stop_reason(errors: Sequence[SourceError]) -> str:
    """Why a fetch stopped early, as a poll-error reason."""
    return RateLimited.reason if any(isinstance(e, RateLimited) for e in errors) else "transient"


def load_pending(entry: Any) -> Pending:
    """A saved pending thread: [post_id, url or None] (or a bare post id)."""
    if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str | None):
        return str(entry[0]), entry[1]
    return str(entry), None


def without_proof(url: str | None) -> str | None:
    """A paging link fit to keep in the cursor: the proof (and any token) is added per call."""
    if url is None:
        return None
    link = URL(url, encoded=True)
    kept = {k: v for k, v in link.query.items() if k not in ("appsecret_proof", "access_token")}
    return str(link.with_query(kept)) if kept != dict(link.query) else url
