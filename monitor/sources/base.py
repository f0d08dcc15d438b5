"""The Source protocol, the error tree every adapter maps its failures into, the Batch it makes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from monitor.domain import Batch, Message, Skipped


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


class Refused(Exception):
    """One thread refused (403, 400, other 4xx) or served unusable: it is skipped, not the poll."""

    def __init__(self, why: Skipped) -> None:
        super().__init__(why.detail)
        self.why = why


def most_severe(failures: BaseExceptionGroup[Any]) -> SourceError | None:
    """The error the operator most needs to see; None if a non-SourceError (a bug) is inside."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [failures]
    while stack:
        current = stack.pop()
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        else:
            flat.append(current)
    errors = [error for error in flat if isinstance(error, SourceError)]
    if not errors or len(errors) != len(flat):
        return None
    for kind in (AuthError, FatalError, RateLimited, TransientError):
        for error in errors:
            if isinstance(error, kind):
                return error
    return errors[0]


@contextlib.contextmanager
def one_error() -> Iterator[None]:
    """Turn a TaskGroup's ExceptionGroup into the one error the operator most needs to see."""
    try:
        yield
    except ExceptionGroup as failures:
        chosen = most_severe(failures)
        if chosen is None:
            raise
        raise chosen from chosen.__cause__


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


@runtime_checkable
class Listens(Protocol):
    """A source with a push channel of its own (Mastodon's streaming API)."""

    @property
    def streaming(self) -> bool:
        """The operator wants the push channel followed (else: polling only)."""
        ...

    @property
    def streams_open(self) -> int:
        """Push connections open now."""
        ...

    async def listen(self, on_news: Callable[[], None]) -> None:
        """Run until cancelled; call `on_news` when the platform shows something new."""
        ...


@dataclass(kw_only=True)
class FetchRecord:
    """What one fetch accumulates across its requests (mutable on purpose)."""

    requests: int = 0
    skipped: dict[str, Skipped] = field(default_factory=dict)
    # The first throttle or transient failure: the fetch stops early, keeping what came before.
    stopped: RateLimited | TransientError | None = None

    def stop(self, err: RateLimited | TransientError) -> None:
        """End the fetch at the first refusal; requests already under way still count."""
        self.stopped = self.stopped or err

    def batch(
        self,
        cursor: Mapping[str, Any],
        messages: Iterable[Message],
        complete: Mapping[str, frozenset[str]],
        deleted: Iterable[str],
    ) -> Batch:
        """What the fetch read, interrupted or not, with the cursor to go on from."""
        stopped = self.stopped
        return Batch(
            messages=tuple(messages),
            cursor=cursor,
            complete_threads=complete,
            deleted_threads=frozenset(deleted),
            requests=self.requests,
            wait_seconds=stopped.retry_after if isinstance(stopped, RateLimited) else None,
            interrupted=stopped.reason if stopped is not None else None,
            skipped=dict(self.skipped),
        )
