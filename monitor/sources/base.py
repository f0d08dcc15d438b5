"""The Source protocol and the error tree every adapter maps its failures into."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.domain import Batch


class SourceError(Exception):
    """A fetch failed; `reason` becomes the `reason` label of webcare_poll_errors_total."""

    reason = "error"


class AuthError(SourceError):
    """Credentials are invalid, expired or lack permission; an operator must act."""

    reason = "auth"


class RateLimited(SourceError):
    """The platform asks us to slow down; `retry_after` seconds if it said how long."""

    reason = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(SourceError):
    """Network trouble, timeouts, 5xx or an unreadable body: try again later."""

    reason = "transient"


class FatalError(SourceError):
    """A request the platform will never accept (bad id, bad config)."""

    reason = "fatal"


# Told how much of a long read is left: (left, total, unit), e.g. (245, 365, "days") while a
# first backfill pages back through a year, or (80, 200, "topics").
ProgressCallback = Callable[[float, float, str], None]


@dataclass(frozen=True, kw_only=True)
class FetchRequest:
    """What the coordinator hands a source: its saved cursor and the threads to re-poll."""

    cursor: Mapping[str, Any]
    active_threads: frozenset[str]
    # False: only re-read `active_threads` (e.g. just before a breach); cursor stays as it is.
    include_feed: bool = True
    # Set during a first backfill; sources call it as they work through it.
    on_progress: ProgressCallback | None = None

    def progress(self, left: float, total: float, unit: str) -> None:
        """Tell the coordinator how much is left, if it asked."""
        if self.on_progress is not None:
            self.on_progress(left, total, unit)


class Source(Protocol):
    """A platform adapter: translates wire JSON into domain messages."""

    async def fetch(self, request: FetchRequest) -> Batch:
        """Fetch what is new since the cursor plus the active threads' messages."""
        ...
