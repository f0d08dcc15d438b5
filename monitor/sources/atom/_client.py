"""One board's HTTP: feed GETs with validators, redirects, throttles, our error tree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from monitor.clock import Clock
from monitor.config import PhpbbAtomConfig
from monitor.sources.atom._feed import feed_time
from monitor.sources.atom._state import Run
from monitor.sources.base import FatalError, RateLimited, TransientError
from monitor.sources.http import (
    MAX_REDIRECTS,
    REDIRECTS,
    describe,
    parse_retry_after,
    redirect_target,
    safe_url,
)

ACCEPT = "application/atom+xml, application/xml;q=0.9, */*;q=0.1"

# A phpBB feed is a few dozen KB; anything far larger is not a feed we want to hold in memory.
MAX_FEED_BYTES = 8 * 1024 * 1024

# Without an ETag a 304 rests on Last-Modified, which phpBB derives from the newest post time:
# deleting an older post does not change it. Re-read such feeds in full now and then.
FULL_READ_AFTER = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A feed response the caller decides about (200, 304, 401/403, 404/410)."""

    status: int
    body: bytes
    headers: CIMultiDictProxy[str]
    url: str


class FeedClient:
    """GETs to one board: conditional feed requests, redirects within its origin, our error tree."""

    def __init__(
        self, config: PhpbbAtomConfig, session: aiohttp.ClientSession, clock: Clock
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._base = config.base_url.rstrip("/")
        # Until when the proxy in front of the board asked us to wait (Retry-After).
        self._blocked_until: datetime | None = None
        self.not_modified_total = 0

    def feed_url(self, route: str) -> str:
        """The URL of a feed route ("" is the board-wide feed)."""
        return f"{self._base}/app.php/feed" + (f"/{route}" if route else "")

    @staticmethod
    def conditional(run: Run, route: str) -> dict[str, str]:
        """If-None-Match / If-Modified-Since from the feed's saved validators (polls only)."""
        saved = run.cursor.validators.get(route or "overall", {})
        headers: dict[str, str] = {}
        if run.conditional:
            if "etag" in saved:
                headers["If-None-Match"] = saved["etag"]
            read_at = feed_time(saved.get("read_at"))
            fresh = read_at is not None and run.now - read_at < FULL_READ_AFTER
            if "last_modified" in saved and ("etag" in saved or fresh):
                headers["If-Modified-Since"] = saved["last_modified"]
        return headers

    async def get_feed(self, run: Run, route: str) -> Reply:
        """GET one feed, conditionally when the cursor has validators for it."""
        key = route or "overall"
        reply = await self.get(run, self.feed_url(route), ACCEPT, self.conditional(run, route))
        run.read_feeds.add(key)
        if reply.status == 304:
            run.not_modified += 1
            self.not_modified_total += 1
        elif reply.status == 200:
            fresh_validators = {"read_at": run.now.isoformat()}
            if etag := reply.headers.get("ETag"):
                fresh_validators["etag"] = etag
            if last_modified := reply.headers.get("Last-Modified"):
                fresh_validators["last_modified"] = last_modified
            run.cursor.validators[key] = fresh_validators
        return reply

    async def get(
        self, run: Run, url: str, accept: str, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """One GET; transport failures, throttling and server errors become our error tree."""
        # Redirects are followed here, within the board's origin only (as request_json does):
        # a feed moved to another host is refused with where it pointed, before anything (a
        # cookie, a conditional header) is sent there.
        where = f"GET {safe_url(url)}"
        timeout = self._config.request_timeout
        target = URL(url, encoded=True)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                run.requests += 1
                async with self._session.get(
                    target,
                    headers={"Accept": accept, **(headers or {})},
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    body = await _read_capped(resp, where) if status == 200 else b""
                    reply_headers = CIMultiDictProxy(resp.headers.copy())
                location = reply_headers.get("Location") if status in REDIRECTS else None
                if location is None:
                    break
                target = redirect_target(target, None, location, where)
            else:
                raise TransientError(f"{where}: more than {MAX_REDIRECTS} redirects")
        except TimeoutError as err:
            raise TransientError(f"{where}: timed out after {timeout:g} s") from err
        except aiohttp.ClientPayloadError as err:
            raise TransientError(f"{where}: response body truncated: {describe(err)}") from err
        except aiohttp.ClientError as err:
            raise TransientError(f"{where}: request failed: {describe(err)}") from err
        except OSError as err:
            raise TransientError(f"{where}: network error: {describe(err)}") from err
        self._check_status(where, status, reply_headers)
        return Reply(status=status, body=body, headers=reply_headers, url=safe_url(url))

    def _check_status(self, where: str, status: int, headers: CIMultiDictProxy[str]) -> None:
        """Raise for a throttle or a server error; 200, 304 and 4xx are the caller's to judge."""
        retry_after = parse_retry_after(headers.get("Retry-After"), self._clock.now())
        # phpBB has no rate limit of its own: these come from a proxy or host in front of it.
        if status == 429 or (status == 503 and retry_after is not None):
            self._block(retry_after)
            raise RateLimited(f"{where}: HTTP {status}, throttled", retry_after=retry_after)
        if status >= 500:
            raise TransientError(f"{where}: server error HTTP {status}")
        if status in (408, 425):
            raise TransientError(f"{where}: HTTP {status}")
        if status not in (200, 304) and not 400 <= status < 500:
            raise FatalError(f"{where}: unexpected HTTP {status}")

    def _block(self, retry_after: float | None) -> None:
        if retry_after is not None and retry_after > 0:
            until = self._clock.now() + timedelta(seconds=retry_after)
            self._blocked_until = max(self._blocked_until or until, until)

    def refuse_while_throttled(self, now: datetime) -> None:
        """Send nothing before the proxy's Retry-After has passed (e.g. a pre-breach re-read)."""
        if self._blocked_until is not None and now < self._blocked_until:
            wait = (self._blocked_until - now).total_seconds()
            raise RateLimited(
                f"{safe_url(self._base)}: still throttled for {wait:g} s", retry_after=wait
            )


async def _read_capped(resp: aiohttp.ClientResponse, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_FEED_BYTES:
            raise TransientError(f"{where}: response larger than {MAX_FEED_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
