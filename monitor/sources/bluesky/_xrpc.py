"""XRPC calls to the account's PDS with a signed-in session: sign in, refresh, error mapping.

- `app.bsky.feed.searchPosts` refuses unauthenticated callers since January 2025 (403;
  bluesky-social/atproto#3423, where Bluesky says the endpoint is disabled for them, and #3891),
  so every call carries the session's access token. The PDS proxies app.bsky.* to the AppView.
- `com.atproto.server.createSession` {identifier, password} answers accessJwt, refreshJwt, did,
  handle; a wrong password is 401 {"error": "AuthenticationRequired", "message": "Invalid
  identifier or password"}. It is limited to 30 per 5 minutes and 300 per day per account and
  IP (packages/pds createSession's rateLimit), so the session lives in this object, across
  polls, and is refreshed rather than created anew.
- An expired access token is 400 {"error": "ExpiredToken", "message": "Token has expired"};
  `com.atproto.server.refreshSession` with the refresh token (Bearer) gives a new pair and
  revokes the old refresh token (MarshalX/atproto#158, bluesky-social/bsky-docs#330).
- Rate limits: `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset` (unix seconds) and
  `ratelimit-policy` ("3000;w=300": 3000 requests per 5 minutes per IP, docs.bsky.app
  advanced-guides/rate-limits); over it, 429 {"error": "RateLimitExceeded"}.

Tokens and the password never appear in messages: neither is ever formatted into one, and
server texts are redacted in case a server echoes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from monitor.clock import Clock
from monitor.sources.base import (
    AuthError,
    FatalError,
    FetchRecord,
    RateLimited,
    SourceError,
    TransientError,
)
from monitor.sources.bluesky._wire import xrpc_error
from monitor.sources.http import describe, parse_retry_after, redact, safe_url

Params = Sequence[tuple[str, str]]

CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
_NEW_PASSWORD = (
    "create an app password for the account (Bluesky: Settings > Privacy and security >"
    " App passwords) and set app_password"
)


class NotFound(FatalError):
    """400 {"error": "NotFound"}: the record (a post, a thread) no longer exists."""


@dataclass(kw_only=True)
class Calls(FetchRecord):
    """One fetch's requests, refusals and the highest share of the rate limit used."""

    usage_ratio: float | None = None


@dataclass(frozen=True, kw_only=True)
class Session:
    """A signed-in session; kept in memory only, never in the cursor or a log."""

    access: str
    refresh: str
    did: str
    handle: str


@dataclass(frozen=True, kw_only=True)
class _Answer:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


class Xrpc:
    """Queries to one PDS as one account, signing in and refreshing as needed."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        clock: Clock,
        *,
        service_url: str,
        identifier: str,
        password: str,
        timeout: float,
    ) -> None:
        self._http = http
        self._clock = clock
        self._base = service_url.rstrip("/")
        self._identifier = identifier
        self._password = password
        self._timeout = timeout
        self._session: Session | None = None
        self._lock = asyncio.Lock()

    async def session(self, calls: Calls) -> Session:
        """The current session, signing in first if there is none."""
        async with self._lock:
            if self._session is None:
                self._session = await self._sign_in(calls)
            return self._session

    async def _renew(self, calls: Calls, stale: Session, *, refresh: bool) -> Session:
        """A session instead of `stale`: refreshed, or signed in anew (one at a time)."""
        # Concurrent calls meet the same expiry; the first renews, the others take its result
        # (a second refresh would present a refresh token the first one revoked).
        async with self._lock:
            if self._session is not None and self._session is not stale:
                return self._session
            self._session = None
            renewed = await (self._refresh(calls, stale) if refresh else self._sign_in(calls))
            self._session = renewed
            return renewed

    async def query(self, calls: Calls, nsid: str, params: Params) -> Mapping[str, Any]:
        """GET one XRPC query; an expired token is refreshed and the call made once more."""
        session = await self.session(calls)
        for attempt in (1, 2):
            answer = await self._send(calls, "GET", nsid, params=params, token=session.access)
            if answer.status == 200 and isinstance(answer.body, dict):
                return answer.body
            error, message = xrpc_error(answer.body)
            if attempt == 1 and answer.status == 400 and error == "ExpiredToken":
                session = await self._renew(calls, session, refresh=True)
                continue
            if attempt == 1 and answer.status == 401 and error in ("InvalidToken", "AuthMissing"):
                # The session was revoked (a new app password, a deleteSession elsewhere).
                session = await self._renew(calls, session, refresh=False)
                continue
            raise self._error(nsid, answer.status, error, message)
        raise TransientError(f"GET {nsid}: the session expired again right after a refresh")

    async def _sign_in(self, calls: Calls) -> Session:
        body = {"identifier": self._identifier, "password": self._password}
        answer = await self._send(calls, "POST", CREATE_SESSION, json=body)
        if answer.status == 200:
            return self._session_of(answer.body, CREATE_SESSION)
        error, message = xrpc_error(answer.body)
        if answer.status in (400, 401, 403):
            raise AuthError(
                f"Bluesky ({self._base}) refused to sign in {self._identifier}:"
                f" {self._clean(error or f'HTTP {answer.status}')}"
                f" ({self._clean(message) or 'no message'}); {_NEW_PASSWORD}"
            )
        raise self._error(CREATE_SESSION, answer.status, error, message)

    async def _refresh(self, calls: Calls, session: Session) -> Session:
        answer = await self._send(calls, "POST", REFRESH_SESSION, token=session.refresh)
        if answer.status == 200:
            return self._session_of(answer.body, REFRESH_SESSION)
        # Refresh tokens expire too (and are revoked once used): sign in afresh.
        return await self._sign_in(calls)

    def _session_of(self, body: Any, nsid: str) -> Session:
        fields = [body.get(k) if isinstance(body, dict) else None for k in _SESSION_KEYS]
        if not all(isinstance(f, str) and f for f in fields):
            raise TransientError(f"POST {nsid}: the answer has no session (accessJwt, did...)")
        access, refresh, did, handle = (str(f) for f in fields)
        return Session(access=access, refresh=refresh, did=did, handle=handle)

    def _error(self, nsid: str, status: int, error: str, message: str) -> SourceError:
        """An XRPC error body in our error tree."""
        text = f"{nsid}: HTTP {status} {self._clean(error) or 'error'}"
        if message:
            text += f": {self._clean(message)}"
        if status == 400 and error == "NotFound":
            return NotFound(text)
        if status in (401, 403):
            return AuthError(f"{text}; {_NEW_PASSWORD}")
        if status in (408, 425):
            return TransientError(text)
        return FatalError(text)

    def _clean(self, text: str) -> str:
        for secret in (self._password, *self._tokens()):
            text = redact(text, secret)
        return text[:300]

    def _tokens(self) -> tuple[str, ...]:
        session = self._session
        return (session.access, session.refresh) if session is not None else ()

    async def _send(
        self,
        calls: Calls,
        method: str,
        nsid: str,
        *,
        params: Params = (),
        json: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> _Answer:
        """One HTTP request; transport failures, 429 and 5xx raised, other bodies returned."""
        url = f"{self._base}/xrpc/{nsid}"
        where = f"{method} {safe_url(url)}"
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        calls.requests += 1
        try:
            async with self._http.request(
                method,
                url,
                params=list(params),
                data=orjson.dumps(json) if json is not None else None,
                headers={**headers, "Content-Type": "application/json"} if json else headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                # XRPC does not redirect; following one would carry the token elsewhere.
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                resp_headers = resp.headers.copy()
        except TimeoutError as err:
            raise TransientError(f"{where}: timed out after {self._timeout:g} s") from err
        except aiohttp.ClientError as err:
            raise TransientError(f"{where}: request failed: {describe(err)}") from err
        except OSError as err:
            raise TransientError(f"{where}: network error: {describe(err)}") from err
        frozen = CIMultiDictProxy(resp_headers)
        self._note_usage(calls, frozen)
        if status == 429:
            raise RateLimited(
                f"{where}: HTTP 429 {xrpc_error(_loads(raw))[0] or 'Too Many Requests'}",
                retry_after=self._wait(frozen),
            )
        if status >= 500:
            raise TransientError(f"{where}: server error HTTP {status}")
        if 300 <= status < 400:
            raise FatalError(
                f"{where}: HTTP {status} redirect; check service_url (the account's PDS)"
            )
        body = _loads(raw)
        if body is None:
            if status < 400:
                raise TransientError(f"{where}: HTTP {status} with a body that is not JSON")
            if status in (401, 403):
                # The AppView's "Request forbidden by administrative rules." page (#3423).
                raise AuthError(f"{where}: HTTP {status}, access denied; {_NEW_PASSWORD}")
            raise FatalError(f"{where}: HTTP {status} with a body that is not JSON")
        return _Answer(status=status, body=body, headers=frozen)

    def _note_usage(self, calls: Calls, headers: CIMultiDictProxy[str]) -> None:
        limit = _number(headers.get("ratelimit-limit"))
        remaining = _number(headers.get("ratelimit-remaining"))
        if limit and remaining is not None:
            ratio = min(max(1.0 - remaining / limit, 0.0), 1.0)
            calls.usage_ratio = max(calls.usage_ratio or 0.0, ratio)

    def _wait(self, headers: CIMultiDictProxy[str]) -> float | None:
        """Seconds until the window resets: `ratelimit-reset` is a unix time, not a delta."""
        now: datetime = self._clock.now()
        reset = _number(headers.get("ratelimit-reset"))
        if reset is not None:
            return max(0.0, reset - now.timestamp())
        return parse_retry_after(headers.get("Retry-After"), now)


_SESSION_KEYS = ("accessJwt", "refreshJwt", "did", "handle")


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number == number else None  # not NaN
