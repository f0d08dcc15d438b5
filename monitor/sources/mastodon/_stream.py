"""Mastodon's streaming API as a wake-up call: a new status in a watched hashtag, or a new
mention, means "poll this source now".

The stream carries the same statuses the poll reads, but the poll is what sorts, stores and
keeps the cursor; so an event only asks for the next poll to come at once, and nothing is
parsed twice or lost when a stream drops. Wire format (docs.joinmastodon.org
methods/streaming, Mastodon's streaming/index.js): Server-Sent Events, `event: update` /
`status.update` / `delete` / `notification` lines with a `data:` line each, and a `:thump`
comment every 15 s. Where the streaming server is comes from `GET /api/v2/instance`
(`configuration.urls.streaming`, Mastodon 4.0+) or, on older servers, `GET /api/v1/instance`
(`urls.streaming_api`); both are ws:// or wss:// URLs and SSE uses their http(s) form, as
Mastodon.py's `stream_*` methods do.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping

import aiohttp
from yarl import URL

from monitor.logging import get_logger

log = get_logger("monitor.sources.mastodon")

NEWS = frozenset({b"update", b"status.update", b"delete", b"notification"})
# Heartbeats come every 15 s: a connection silent for this long is dead.
READ_TIMEOUT_SECONDS = 60.0
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
# Answers that will not change by retrying soon: streaming is off or not allowed for us.
_REFUSED = frozenset({400, 401, 403, 404, 405, 410, 501})
# A refused stream is asked again this much later (an operator may switch streaming on, or
# renew a token), quietly: the refusal was logged once.
REFUSED_RETRY_SECONDS = 3600.0
_SCHEMES = {"wss": "https", "ws": "http", "https": "https", "http": "http"}


class StreamListener:
    """The streams of one Mastodon source; `listen` runs until cancelled."""

    def __init__(
        self,
        *,
        source: str,
        base_url: str,
        token: str | None,
        hashtags: list[str],
        session: aiohttp.ClientSession,
        first_retry: float = FIRST_RETRY_SECONDS,
        refused_retry: float = REFUSED_RETRY_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self._source = source
        self._base = URL(base_url)
        self._token = token
        self._hashtags = hashtags
        self._session = session
        self._first_retry = first_retry
        self._refused_retry = refused_retry
        self._rng = rng or random.Random()
        self.open = 0  # streams connected now (the coordinator's gauge reads it)

    async def listen(self, on_news: Callable[[], None]) -> None:
        """Follow every stream (one per hashtag, and the mentions with a token) for ever."""
        server = await self._streaming_server()
        # The token goes only to the configured server or a host under it (Mastodon's own
        # streaming.<host>); elsewhere the public hashtag streams are read without it.
        ours = server.host == self._base.host or (server.host or "").endswith(f".{self._base.host}")
        token = self._token if ours else None
        streams: list[tuple[str, Mapping[str, str]]] = [
            ("hashtag", {"tag": tag}) for tag in self._hashtags
        ]
        if token is not None:
            streams.append(("user/notification", {}))
        if not streams:
            return
        async with asyncio.TaskGroup() as group:
            for path, params in streams:
                url = server.with_path(f"/api/v1/streaming/{path}").with_query(params)
                group.create_task(self._follow(url, token, on_news))

    async def _streaming_server(self) -> URL:
        """Where the streaming API is: the instance's v2 or v1 answer, else the server itself."""
        for path, keys in (
            ("/api/v2/instance", ("configuration", "urls", "streaming")),
            ("/api/v1/instance", ("urls", "streaming_api")),
        ):
            found = await self._instance_field(path, keys)
            try:
                url = URL(found) if isinstance(found, str) else None
            except ValueError:
                url = None
            if url is not None and url.scheme in _SCHEMES and url.host:
                return url.with_scheme(_SCHEMES[url.scheme]).with_path("/")
        return self._base.with_path("/")

    async def _instance_field(self, path: str, keys: tuple[str, ...]) -> object:
        """One field of an instance answer; None when the server does not say."""
        try:
            async with self._session.get(
                self._base.with_path(path), timeout=aiohttp.ClientTimeout(total=20)
            ) as response:
                if response.status != 200:
                    return None
                found: object = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        for key in keys:
            found = found.get(key) if isinstance(found, dict) else None
        return found

    async def _follow(self, url: URL, token: str | None, on_news: Callable[[], None]) -> None:
        """One stream: reconnect with backoff when it drops; when refused, ask again hourly."""
        headers = {"Accept": "text/event-stream"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"  # a header: URLs reach logs
        stream = url.path.removeprefix("/api/v1/streaming/")
        retry = self._first_retry
        dropped = False
        refused = False
        while True:
            try:
                async with self._session.get(
                    url,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=20, sock_read=READ_TIMEOUT_SECONDS
                    ),
                ) as response:
                    if response.status in _REFUSED:
                        if not refused:
                            log.warning(
                                "Mastodon streaming refused: new posts are seen at the next poll",
                                source=self._source,
                                stream=stream,
                                status=response.status,
                            )
                        refused = True
                        await asyncio.sleep(self._refused_retry)
                        continue
                    refused = False
                    if response.status == 200:
                        log.info("Mastodon stream open", source=self._source, stream=stream)
                        retry = self._first_retry
                        if dropped:
                            on_news()  # what came while it was down was announced to nobody
                        self.open += 1
                        try:
                            await self._read(response, on_news)
                        finally:
                            self.open -= 1
                    why = f"HTTP {response.status}" if response.status != 200 else "closed"
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                why = type(err).__name__
            # Jittered, so streams of several sources do not reconnect in step.
            wait = retry * self._rng.uniform(0.5, 1.0)
            log.info(
                "Mastodon stream dropped; reconnecting",
                source=self._source,
                stream=stream,
                why=why,
                wait_s=round(wait, 1),
            )
            await asyncio.sleep(wait)
            retry = min(retry * 2, MAX_RETRY_SECONDS)
            dropped = True

    @staticmethod
    async def _read(response: aiohttp.ClientResponse, on_news: Callable[[], None]) -> None:
        """Call on_news for every event that says something changed; heartbeats are ignored."""
        event = b""
        async for line in response.content:
            line = line.rstrip(b"\r\n")
            if line.startswith(b"event:"):
                event = line[6:].strip()
            elif line.startswith(b"data:") and event in NEWS:
                on_news()
            elif not line:
                event = b""
