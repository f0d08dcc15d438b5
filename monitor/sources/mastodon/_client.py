"""One GET against a Mastodon server: the token, the rate-limit headers, errors mapped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from monitor.clock import Clock
from monitor.config import MastodonConfig
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRecord,
    RateLimited,
    TransientError,
)
from monitor.sources.http import QueryParams, redact, request_json
from monitor.sources.mastodon._wire import links
from monitor.sources.wire import parse_time

SCOPES = "read:statuses read:notifications"
# Share of the rate-limit window kept for the streams: re-reading open threads stops below it.
_RESERVE = 0.25
_NEW_TOKEN = (
    f"create an access token of the brand's account with the scopes {SCOPES} (Preferences >"
    " Development > New application) and set access_token"
)


class Gone(Exception):
    """HTTP 404: the status or account does not exist (any more), or is not visible to us."""


@dataclass(frozen=True, kw_only=True)
class Answer:
    """A 2xx body with the Link header's URLs by rel."""

    body: Any
    links: Mapping[str, str]


def reset_wait(headers: CIMultiDictProxy[str], now: datetime) -> float | None:
    """Seconds until X-RateLimit-Reset (an ISO 8601 time), if the server sent one."""
    reset = parse_time(headers.get("X-RateLimit-Reset"))
    return None if reset is None else max(0.0, (reset - now).total_seconds())


class MastodonClient:
    """GETs for one source; remembers the server's rate-limit window between fetches."""

    def __init__(
        self, config: MastodonConfig, session: aiohttp.ClientSession, clock: Clock
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self.base = config.base_url.rstrip("/")
        self._origin = URL(self.base).origin()
        token = config.access_token
        self.token = token.get_secret_value() if token is not None else None
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset: datetime | None = None

    @property
    def usage_ratio(self) -> float | None:
        """The share of the window's requests used, from the last response's headers."""
        if not self.limit or self.remaining is None:
            return None
        return min(1.0, max(0.0, (self.limit - self.remaining) / self.limit))

    def budget_low(self) -> bool:
        """Less than a quarter of the window's requests left (kept for the new statuses)."""
        if not self.limit or self.remaining is None:
            return False
        if self.reset is not None and self.reset <= self._clock.now():
            return False  # a new window has begun
        return self.remaining < self.limit * _RESERVE

    async def get(
        self,
        record: FetchRecord,
        target: str,
        params: QueryParams | None = None,
        *,
        scope: str = "read:statuses",
        auth: bool = True,
    ) -> Answer:
        """GET a path under the server (or a Link URL, followed verbatim); errors mapped."""
        self._check_budget()
        url = self._checked(target) if "://" in target else f"{self.base}{target}"
        headers = {"Accept": "application/json"}
        if auth and self.token is not None:
            # A header, never a query parameter: URLs end up in logs.
            headers["Authorization"] = f"Bearer {self.token}"
        record.requests += 1
        try:
            response = await request_json(
                self._session,
                url,
                params=params,
                headers=headers,
                timeout=self._config.request_timeout,
                clock=self._clock,
                # A 429 from Mastodon says when the window resets, not Retry-After.
                rate_limit_wait=reset_wait,
            )
        except RateLimited as err:
            # No request until the window resets (the next fetch too, if it comes earlier).
            self.remaining = 0
            if err.retry_after is not None:
                self.reset = self._clock.now() + timedelta(seconds=err.retry_after)
            raise RateLimited(
                f"Mastodon throttled this token or address: {err}", retry_after=err.retry_after
            ) from err
        self._note_limits(response.headers)
        where = f"GET {response.url}"
        status, body = response.status, response.body
        if 200 <= status < 300:
            return Answer(body=body, links=links(response.headers.get("Link")))
        said = body.get("error") if isinstance(body, dict) else None
        said = redact(str(said), self.token) if said else "no error text"
        if status == 401:
            raise AuthError(f"Mastodon refused the access token ({said!r}) [{where}]: {_NEW_TOKEN}")
        if status == 403:
            raise AuthError(
                f"the access token lacks the scope {scope} (HTTP 403 {said!r}) [{where}]:"
                f" {_NEW_TOKEN}"
            )
        if status == 404:
            raise Gone(f"not found ({said!r}) [{where}]")
        if status in (408, 425):
            raise TransientError(f"{where}: HTTP {status} {said!r}")
        raise FatalError(f"{where}: HTTP {status} {said!r}")

    def _check_budget(self) -> None:
        """Stop before a request the server would refuse: Remaining was 0 until the reset."""
        now = self._clock.now()
        if self.remaining == 0 and self.reset is not None and self.reset > now:
            wait = (self.reset - now).total_seconds()
            raise RateLimited(
                f"Mastodon's rate limit ({self.limit} requests per window) is used up until"
                f" {self.reset.isoformat()} (X-RateLimit-Remaining: 0)",
                retry_after=wait,
            )

    def _note_limits(self, headers: CIMultiDictProxy[str]) -> None:
        remaining = headers.get("X-RateLimit-Remaining", "")
        if remaining.isdigit():
            self.remaining = int(remaining)
            limit = headers.get("X-RateLimit-Limit", "")
            self.limit = int(limit) if limit.isdigit() else self.limit
            self.reset = parse_time(headers.get("X-RateLimit-Reset"))

    def _checked(self, link: str) -> str:
        if URL(link, encoded=True).origin() != self._origin:
            # Never hand the token to a host the operator did not configure.
            raise FatalError(
                f"a Link header points at {URL(link).origin()}, not at the configured"
                f" base_url {self._origin}"
            )
        return link
