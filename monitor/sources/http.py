"""Shared HTTP helper for platform adapters: one GET/POST, JSON decoding, failure mapping."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from monitor.clock import Clock
from monitor.sources.base import (
    AuthError,
    FatalError,
    RateLimited,
    SourceError,
    TransientError,
)

# Anything that looks like a URL with a query string inside an exception text: the query may
# carry a credential (e.g. a Graph `paging.next` built by a client that sent `access_token=`).
_URL_QUERY = re.compile(r"(https?://[^\s'\"<>?#]+)[?#][^\s'\"<>]*")

QueryParams = Mapping[str, str | int | float]
# How long a 429 without Retry-After asks us to wait, from the platform's own headers (e.g.
# Mastodon's X-RateLimit-Reset, an ISO 8601 time): (headers, now) -> seconds or None.
WaitFromHeaders = Callable[[CIMultiDictProxy[str], datetime], float | None]
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


@dataclass(frozen=True, kw_only=True)
class JsonResponse:
    """A response whose body was decoded as JSON; 4xx bodies are returned, not raised."""

    status: int
    body: Any
    headers: CIMultiDictProxy[str]
    # The URL without query string or user info, safe to put into messages and logs.
    url: str


def safe_url(url: str | URL) -> str:
    """The URL without query string, fragment or user info, for messages and logs."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        return str(parsed.with_user(None).with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "<unparseable url>"


def scrub(text: str) -> str:
    """Strip query strings from every URL inside a free text (e.g. an aiohttp error)."""
    return _URL_QUERY.sub(r"\1", text)


def without_query(url: str) -> str:
    """The URL without its query, for messages; unlike safe_url it keeps the encoding as sent."""
    return str(URL(url, encoded=True).with_query(None))


def redact(text: str, secret: str | None) -> str:
    """`text` with the credential replaced by "***" (platforms may echo it in error messages)."""
    if secret is not None and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # reject NaN
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 HTTP-dates are always GMT; parsedate gives naive for "-0000".
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


async def request_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: QueryParams | None = None,
    headers: Mapping[str, str] | None = None,
    # Handed to aiohttp's ClientTimeout so it also bounds reading the body.
    timeout: float,  # noqa: ASYNC109
    method: str = "GET",
    data: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    accept_5xx_json: bool = False,
    rate_limit_wait: WaitFromHeaders | None = None,
) -> JsonResponse:
    """Make one request and decode its JSON body; map transport failures to SourceError.

    2xx-4xx JSON bodies are returned so the adapter can decode the platform's error format.
    429 raises RateLimited (Retry-After honoured), 5xx TransientError unless `accept_5xx_json`
    and the body is JSON (some platforms, e.g. the Graph API, put error codes in 5xx bodies).
    `rate_limit_wait` reads a 429's wait from other headers when Retry-After is absent.
    """
    where = f"{method} {safe_url(url)}"
    # encoded=True: follow server-built links (Graph `paging.next`) byte for byte.
    target = URL(url, encoded=True)
    query = _stringify(params)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            # Redirects are followed here, not by aiohttp: credentials ride in headers (Api-Key,
            # Authorization) that must never reach another origin.
            async with session.request(
                method,
                target,
                params=query,
                headers=headers,
                data=data,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                resp_headers = CIMultiDictProxy(CIMultiDict(resp.headers))
            location = resp_headers.get("Location") if status in REDIRECTS else None
            if location is None:
                break
            following = redirect_target(target, query, location, where)
            target, query = following, None
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, data = "GET", None  # what browsers and aiohttp do
        else:
            raise TransientError(f"{where}: more than {MAX_REDIRECTS} redirects")
    except aiohttp.InvalidURL as err:
        raise FatalError(f"{where}: invalid URL") from err
    except TimeoutError as err:
        # Includes aiohttp's ServerTimeoutError and the total ClientTimeout.
        raise TransientError(f"{where}: timed out after {timeout:g} s") from err
    except aiohttp.ClientPayloadError as err:
        raise TransientError(
            f"{where}: response body truncated or corrupt: {describe(err)}"
        ) from err
    except aiohttp.ClientError as err:
        raise TransientError(f"{where}: request failed: {describe(err)}") from err
    except OSError as err:
        raise TransientError(f"{where}: network error: {describe(err)}") from err

    now = clock.now() if clock is not None else datetime.now(UTC)
    if status == 429:
        wait = parse_retry_after(resp_headers.get("Retry-After"), now)
        if wait is None and rate_limit_wait is not None:
            wait = rate_limit_wait(resp_headers, now)
        raise RateLimited(f"{where}: HTTP 429 Too Many Requests", retry_after=wait)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        if status >= 500:
            raise TransientError(f"{where}: server error HTTP {status}") from err
        raise _undecodable(where, status, len(raw), err) from err
    if status >= 500 and not accept_5xx_json:
        raise TransientError(f"{where}: server error HTTP {status}")
    return JsonResponse(status=status, body=body, headers=resp_headers, url=safe_url(url))


def redirect_target(
    current: URL, query: Mapping[str, str] | None, location: str, where: str
) -> URL:
    """Where a redirect leads; an error if it leaves the origin the credentials belong to."""
    here = current.update_query(query) if query else current
    try:
        target = here.join(URL(location))
    except ValueError as err:
        raise TransientError(f"{where}: redirect to an unreadable Location") from err
    if target.origin() != current.origin():
        raise FatalError(
            f"{where}: the server redirects to {safe_url(target)}, another origin than"
            f" {current.origin()}; credentials are never sent there. Check the configured base"
            " URL (scheme, host and port) against where the service now lives"
        )
    return target


def _stringify(params: QueryParams | None) -> dict[str, str] | None:
    if params is None:
        return None
    return {key: str(value) for key, value in params.items()}


def _undecodable(where: str, status: int, size: int, err: orjson.JSONDecodeError) -> SourceError:
    """A body that is not JSON: a proxy page, a cut-off response, or a plain-text error."""
    detail = f"HTTP {status}, {size} bytes: {err}"
    if status < 400:
        return TransientError(
            f"{where}: response body is not valid JSON (malformed or truncated; {detail})"
        )
    if status in (401, 403):
        return AuthError(f"{where}: access denied with a non-JSON body ({detail})")
    if status in (408, 425):
        return TransientError(f"{where}: HTTP {status} with a non-JSON body ({detail})")
    return FatalError(f"{where}: HTTP {status} with a non-JSON body ({detail})")


def describe(err: BaseException) -> str:
    """An exception as "Type: text" for a message, URL query strings scrubbed."""
    text = scrub(str(err)) or "no details"
    return f"{type(err).__name__}: {text}"
