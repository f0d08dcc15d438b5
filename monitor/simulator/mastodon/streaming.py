"""The fake Mastodon's streaming API: Server-Sent Events of new, edited and deleted statuses.

[STREAM]  docs.joinmastodon.org/methods/streaming and streaming/index.js: `GET
          /api/v1/streaming/health` answers "OK"; `GET /api/v1/streaming/hashtag?tag=NAME`
          (public statuses with the tag) and `/api/v1/streaming/user/notification` (the token
          owner's notifications; needs the token) answer `text/event-stream`: `event: update` /
          `status.update` with the Status JSON as `data:`, `event: delete` with the status id,
          `event: notification` with the Notification JSON; a `:thump` comment line every 15 s
          keeps the connection alive. The streaming server is its own process: Rack::Attack's
          request limit does not count these.
[INSTANCE] methods/instance: `GET /api/v2/instance` (Mastodon 4.0+) names the streaming
          server in `configuration.urls.streaming`, the older `GET /api/v1/instance` in
          `urls.streaming_api` (ws:// or wss:// URLs; a client speaking SSE uses their HTTP form).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from monitor.simulator.mastodon.model import Notification, Status

HEARTBEAT_SECONDS = 15.0
_CLOSE = ("", "")  # the queue's sentinel: the server drops the connection


@dataclass(eq=False)
class _Listener:
    """One open stream: which, for which tag, and what waits to be written to it."""

    stream: str  # "hashtag" or "user/notification"
    tag: str | None
    queue: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)


class StreamingApi:
    """The streaming endpoints, for FakeMastodon to route; fed by its store's changes."""

    def __init__(self, base_url: Callable[[], str]) -> None:
        self._base_url = base_url
        self.enabled = True  # False: the server answers 404, as one with streaming turned off
        self.instance_v2 = True  # False: a server older than 4.0, without /api/v2/instance
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self.connections = 0  # streams opened so far
        self._listeners: list[_Listener] = []

    @property
    def open_streams(self) -> int:
        """Streams open right now."""
        return len(self._listeners)

    def publish(self, event: str, subject: Status | Notification) -> None:
        """[STREAM] Hand a change to every open stream that shows it."""
        for listener in self._listeners:
            if isinstance(subject, Notification):
                if listener.stream == "user/notification":
                    data = orjson.dumps(subject.to_json(self._base_url())).decode()
                    listener.queue.put_nowait(("notification", data))
                continue
            if listener.stream != "hashtag" or subject.reblog_of is not None:
                continue
            if subject.visibility != "public" or (listener.tag or "") not in {
                t.lower() for t in subject.tags
            }:
                continue
            data = subject.id if event == "delete" else self._status_json(subject)
            listener.queue.put_nowait((event, data))

    def drop_all(self) -> None:
        """Close every open stream from the server's side (a restart, a proxy's timeout)."""
        for listener in self._listeners:
            listener.queue.put_nowait(_CLOSE)

    async def health(self, _request: web.Request) -> web.StreamResponse:
        """[STREAM] GET /api/v1/streaming/health."""
        if not self.enabled:
            return web.Response(status=404, text="Not Found")
        return web.Response(text="OK")

    async def serve(self, request: web.Request, stream: str, tag: str | None) -> web.StreamResponse:
        """[STREAM] One SSE connection, open until the client or the server closes it."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        listener = _Listener(stream=stream, tag=tag.lower() if tag else None)
        self._listeners.append(listener)
        self.connections += 1
        try:
            await response.write(b":)\n")
            while True:
                try:
                    event, data = await asyncio.wait_for(
                        listener.queue.get(), self.heartbeat_seconds
                    )
                except TimeoutError:
                    await response.write(b":thump\n")
                    continue
                if (event, data) == _CLOSE:
                    break
                await response.write(f"event: {event}\ndata: {data}\n\n".encode())
        except ConnectionResetError:
            pass  # the client went away
        finally:
            self._listeners.remove(listener)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    def _status_json(self, status: Status) -> str:
        return orjson.dumps(status.to_json(self._base_url())).decode()
