"""Graph API batch requests: concurrent GETs of pages that share a token go out as one POST.

Wire format (Graph API "Batch Requests", https://developers.facebook.com/docs/graph-api/batch-requests):
POST to the API root with form fields `batch` = JSON array of {"method": "GET", "relative_url"}
(at most 50 per POST; each still counts as one call for rate limiting) and `include_headers`.
The answer is a JSON array in request order of {"code": int, "headers": [{"name", "value"}],
"body": "<JSON encoded string>"}, with null for an operation that did not complete in time
(facebookarchive/php-graph-sdk#619). A batch refused as a whole (bad token, throttled) is an
ordinary Graph error response (raised to each caller as BatchRefused).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from monitor.clock import Clock
from monitor.config import FacebookPageConfig, SourceConfig
from monitor.sources.base import RateLimited, SourceError, TransientError
from monitor.sources.facebook_token import proof_params
from monitor.sources.http import JsonResponse, request_json, safe_url

BATCH_LIMIT = 50
# How long a partial batch waits for one more sub-request once every member of the poll group
# has started its cycle: the rest of their requests follow within milliseconds.
LINGER_SECONDS = 0.005
# ... and while members have yet to start: the coordinator reads and writes the store around
# each member's fetch, which spreads the members' first requests over hundreds of milliseconds
# (measured: gaps of up to ~0.4 s among 200 pages on SQLite).
MEMBER_WAIT_SECONDS = 1.0
# Usage is reported for the app as a whole: sub-responses without their own copy get the POST's.
USAGE_HEADERS = ("x-app-usage", "x-business-use-case-usage", "x-page-usage")


@dataclass(frozen=True, kw_only=True)
class _Pending:
    """One queued sub-request and the future its caller awaits."""

    relative_url: str
    timeout: float
    future: asyncio.Future[JsonResponse]
    # The caller's record of the batch POSTs its sub-requests travelled in (HTTP requests).
    sent_in: set[int] | None = None


class BatchRefused(Exception):
    """Graph answered the batch POST as a whole with an error instead of sub-responses."""

    def __init__(self, response: JsonResponse) -> None:
        super().__init__(f"batch refused with HTTP {response.status}")
        self.response = response


class GraphBatcher:
    """Collects concurrent Graph GETs on one token and sends them as batch POSTs of ≤ 50."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_base_url: str,
        access_token: str,
        proof: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        members: int = 0,
        linger: float = LINGER_SECONDS,
        member_wait: float = MEMBER_WAIT_SECONDS,
        limit: int = BATCH_LIMIT,
    ) -> None:
        self._session = session
        self._base = api_base_url.rstrip("/")
        self._clock = clock
        self._members = members
        self._arrived: set[str] = set()
        self._linger = linger
        self._member_wait = member_wait
        self._limit = limit
        # Header, never a form field or query parameter: URLs and forms can end up in logs.
        self._headers = {
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/json",
        }
        # appsecret_proof goes with the POST; Graph applies it to every operation inside.
        self._proof = dict(proof or {})
        self._queue: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.batches_sent = 0  # batch POSTs
        self.sub_requests_sent = 0  # sub-requests inside them

    def resize(self, members: int) -> None:
        """How many pages poll through this batcher now (those this instance holds)."""
        self._members = members
        self._arrived = set()

    def arrive(self, member: str) -> None:
        """A member's poll cycle starts (its requests are on the way)."""
        if member in self._arrived or len(self._arrived) >= self._members:
            self._arrived = set()  # a new cycle
        self._arrived.add(member)

    async def get(
        self,
        relative_url: str,
        *,
        timeout: float,  # noqa: ASYNC109
        sent_in: set[int] | None = None,
    ) -> JsonResponse:
        """GET `relative_url` (relative to api_base_url) inside the next batch; its response.

        Raises BatchRefused when Graph refuses the whole batch POST with an error answer.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JsonResponse] = loop.create_future()
        self._queue.append(
            _Pending(relative_url=relative_url, timeout=timeout, future=future, sent_in=sent_in)
        )
        if len(self._queue) >= self._limit:
            self._flush()
        else:
            # Re-armed on every arrival: the batch leaves once no sub-request came for a while.
            if self._timer is not None:
                self._timer.cancel()
            expected = len(self._arrived) < self._members
            wait = self._member_wait if expected else self._linger
            self._timer = loop.call_later(wait, self._flush)
        return await future

    async def close(self) -> None:
        """Cancel queued and in-flight sub-requests (on shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for pending in self._queue:
            pending.future.cancel()
        self._queue.clear()
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue:
            chunk, self._queue = self._queue[: self._limit], self._queue[self._limit :]
            # A caller that gave up (its poll was cancelled) is not sent at all.
            live = [pending for pending in chunk if not pending.future.done()]
            if live:
                task = asyncio.get_running_loop().create_task(self._send(live))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, chunk: list[_Pending]) -> None:
        try:
            await self._send_batch(chunk)
        finally:
            # Cancelled (shutdown) or crashed: no caller may wait for an answer that never comes.
            for pending in chunk:
                if not pending.future.done():
                    pending.future.cancel()

    async def _send_batch(self, chunk: list[_Pending]) -> None:
        operations = [{"method": "GET", "relative_url": p.relative_url} for p in chunk]
        self.batches_sent += 1
        self.sub_requests_sent += len(chunk)
        for pending in chunk:
            if pending.sent_in is not None:
                pending.sent_in.add(self.batches_sent)
        form = {
            "batch": orjson.dumps(operations).decode(),
            "include_headers": "true",
            **self._proof,
        }
        try:
            response = await request_json(
                self._session,
                f"{self._base}/",
                method="POST",
                data=form,
                headers=self._headers,
                timeout=max(p.timeout for p in chunk),
                clock=self._clock,
                # Graph 500s carry error codes too (e.g. code 2, is_transient).
                accept_5xx_json=True,
            )
        except SourceError as err:
            for pending in chunk:
                _fail(pending, _copy(err))
            return
        except Exception as err:  # a bug: every caller hears of it (and logs it), none hangs
            for pending in chunk:
                _fail(pending, err)
            return
        answers = response.body
        if isinstance(answers, list) and len(answers) == len(chunk):
            for pending, answer in zip(chunk, answers, strict=True):
                try:
                    result = self._sub_response(pending, answer, response)
                except SourceError as err:
                    _fail(pending, err)
                else:
                    if not pending.future.done():
                        pending.future.set_result(result)
        elif isinstance(answers, dict) and isinstance(answers.get("error"), dict):
            # Refused as a whole (token, throttling, batches not taken): each caller decides.
            for pending in chunk:
                _fail(pending, BatchRefused(self._as_sub(pending, response)))
        else:
            where = f"POST {safe_url(self._base + '/')}"
            for pending in chunk:
                _fail(
                    pending,
                    TransientError(
                        f"{where}: HTTP {response.status}, the batch answer is not a list of"
                        f" {len(chunk)} responses"
                    ),
                )

    def _sub_response(self, pending: _Pending, answer: object, outer: JsonResponse) -> JsonResponse:
        """One entry of the batch answer as if it had been a plain GET response."""
        where = f"GET {self._url(pending)} (in a Graph batch)"
        if answer is None:
            raise TransientError(f"{where}: timed out inside the batch (null response)")
        code = answer.get("code") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or isinstance(code, bool) or not isinstance(code, int):
            raise TransientError(f"{where}: malformed batch entry")
        headers: CIMultiDict[str] = CIMultiDict()
        raw_headers = answer.get("headers")
        for header in raw_headers if isinstance(raw_headers, list) else []:
            if isinstance(header, dict):
                name, value = header.get("name"), header.get("value")
                if isinstance(name, str) and isinstance(value, str):
                    headers.add(name, value)
        for name in USAGE_HEADERS:
            if name not in headers and name in outer.headers:
                headers[name] = outer.headers[name]
        text = answer.get("body")
        if text is None:
            body: object = None
        elif isinstance(text, str):
            try:
                body = orjson.loads(text)
            except orjson.JSONDecodeError as err:
                raise TransientError(
                    f"{where}: HTTP {code}, body is not valid JSON (malformed or truncated)"
                ) from err
        else:
            raise TransientError(f"{where}: batch entry body is not a string")
        return JsonResponse(
            status=code, body=body, headers=CIMultiDictProxy(headers), url=self._url(pending)
        )

    def _as_sub(self, pending: _Pending, outer: JsonResponse) -> JsonResponse:
        return JsonResponse(
            status=outer.status, body=outer.body, headers=outer.headers, url=self._url(pending)
        )

    def _url(self, pending: _Pending) -> str:
        return safe_url(f"{self._base}/{pending.relative_url}")


def graph_key(config: FacebookPageConfig) -> str:
    """Sources with equal keys can share a batch: same Graph endpoint and token.

    The token is hashed because the key names the poll group (task names, logs).
    """
    token = config.access_token.get_secret_value().encode()
    digest = hashlib.sha256(token).hexdigest()[:12]
    return f"facebook:{str(config.api_base_url).rstrip('/')}:token-{digest}"


def shared_batchers(
    sources: Iterable[SourceConfig], session: aiohttp.ClientSession, clock: Clock
) -> dict[str, GraphBatcher]:
    """One batcher per Graph endpoint + token used by two or more Facebook sources."""
    configs: dict[str, list[FacebookPageConfig]] = {}
    for source in sources:
        if isinstance(source, FacebookPageConfig):
            configs.setdefault(graph_key(source), []).append(source)
    # A lone source gains nothing from batch envelopes: it keeps plain GETs.
    return {
        key: GraphBatcher(
            session,
            api_base_url=str(group[0].api_base_url),
            access_token=group[0].access_token.get_secret_value(),
            proof=proof_params(group[0]),
            clock=clock,
            members=len(group),
        )
        for key, group in configs.items()
        if len(group) >= 2
    }


def batch_group(source: SourceConfig, batchers: Mapping[str, GraphBatcher]) -> str | None:
    """The poll group of a source: its batcher's key, so its pages are polled together."""
    if isinstance(source, FacebookPageConfig):
        key = graph_key(source)
        if key in batchers:
            return key
    return None


def _fail(pending: _Pending, error: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(error)


def _copy(error: SourceError) -> SourceError:
    """A fresh exception per caller: one instance raised in many tasks mixes their tracebacks."""
    copy: SourceError
    if isinstance(error, RateLimited):
        copy = RateLimited(str(error), retry_after=error.retry_after)
    else:
        copy = type(error)(str(error))
    copy.__cause__ = error.__cause__
    return copy
