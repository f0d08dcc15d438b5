"""The fake board over HTTP: routes, legacy URLs ([COMPAT]), conditional requests, faults."""

from __future__ import annotations

import html

from aiohttp import web

from monitor.simulator.base import DROPPED, FakeServer, Throttle
from monitor.simulator.phpbb.faults import EntityExpansion, Fault, HtmlPage, MalformedXml
from monitor.simulator.phpbb.feeds import PhpbbFeeds, _server_page
from monitor.simulator.phpbb.model import BOARD_UNAVAILABLE, NO_FEED, NO_POST, RecordedRequest


class FakePhpbbBoard(PhpbbFeeds, FakeServer[Fault]):
    """A scriptable fake phpBB 3.3 board whose Atom feeds are served over real HTTP."""

    # Use `await start()` / `await stop()` and `base_url` (the board URL, e.g.
    # `http://127.0.0.1:PORT/forum`), or mount `make_app()` yourself.

    # --- server lifecycle -----------------------------------------------------------------

    def _url_suffix(self) -> str:
        """What follows host:port in base_url."""
        return self.path_prefix

    def _routes(self, router: web.UrlDispatcher) -> None:
        """The feeds, the legacy feed.php, topic pages; anything else is phpBB's 404 page."""
        prefix = self.path_prefix
        router.add_get(f"{prefix}/app.php/feed", self._handle)
        router.add_get(f"{prefix}/app.php/feed/{{mode}}", self._handle)
        router.add_get(f"{prefix}/app.php/feed/{{mode}}/{{id}}", self._handle)
        router.add_get(f"{prefix}/feed.php", self._handle)
        router.add_get(f"{prefix}/viewtopic.php", self._handle)
        router.add_route("*", "/{tail:.*}", self._handle)

    # --- request handling -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = RecordedRequest(
            path=request.path,
            query=dict(request.query),
            if_none_match=request.headers.get("If-None-Match"),
            if_modified_since=request.headers.get("If-Modified-Since"),
        )
        self.requests.append(record)
        with self._counted():
            response = await self._serve(request)
        if not response.get(DROPPED):  # the client never sees a dropped one: status stays None
            record.status = response.status
        return response

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        response = await self._faulted(request)
        if response is not None:
            return response
        path = request.path.removeprefix(self.path_prefix)
        if path == "/feed.php":
            return self._legacy_redirect(request)
        if path == "/viewtopic.php":
            return self._viewtopic(request)
        if not path.startswith("/app.php/feed"):
            return self._error_page(404, "The page you requested does not exist.")
        if not self.feeds_enabled:
            return self._error_page(404, NO_FEED)  # [CTRL] send_unavailable
        mode = request.match_info.get("mode", "overall")
        raw_id = request.match_info.get("id")
        if mode == "forum" and raw_id is not None and raw_id.isdigit():
            outcome = self._forum_feed(int(raw_id))
        elif mode == "topic" and raw_id is not None and raw_id.isdigit():
            outcome = self._topic_feed(int(raw_id))
        elif mode == "overall" and raw_id is None:
            outcome = self._overall_feed()
        elif mode in ("topics", "topics_new") and raw_id is None and self.new_topics_feed:
            outcome = self._new_topics_feed()
        else:
            return self._error_page(404, NO_FEED)
        if isinstance(outcome, web.Response):
            return outcome
        return self._feed_response(request, outcome)

    def _legacy_redirect(self, request: web.Request) -> web.Response:
        """[COMPAT]: feed.php?f= / ?t= answer 301 to the app.php routes."""
        query = request.query
        if query.get("t", "").isdigit():
            target = f"app.php/feed/topic/{query['t']}"
        elif query.get("f", "").isdigit():
            target = f"app.php/feed/forum/{query['f']}"
        else:
            target = "app.php/feed"
        return web.Response(status=301, headers={"Location": f"{self.path_prefix}/{target}"})

    def _viewtopic(self, request: web.Request) -> web.Response:
        """A minimal topic page: only what identifies the topic ([POSTONLY] canonical link)."""
        post_id = request.query.get("p", "")
        post = self._posts.get(int(post_id)) if post_id.isdigit() else None
        if post is None or not self._guest_sees(post):
            return self._error_page(404, NO_POST)
        topic = self._topics[post.topic_id]
        board = self._board_url(request)
        page = (
            '<!DOCTYPE html>\n<html dir="ltr" lang="en-gb">\n<head>\n<meta charset="utf-8" />\n'
            f"<title>{html.escape(topic.title)} - {html.escape(self.sitename)}</title>\n"
            f'\t<link rel="canonical" href="{board}/viewtopic.php?t={topic.id}">\n'
            '</head>\n<body id="phpbb">\n'
            f'<h2 class="topic-title"><a href="./viewtopic.php?t={topic.id}">'
            f"{html.escape(topic.title)}</a></h2>\n</body>\n</html>\n"
        )
        return web.Response(text=page, content_type="text/html", charset="UTF-8")

    # --- faults, delays -------------------------------------------------------------------

    async def _platform_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """Throttles, broken or hostile XML, an HTML page instead of a feed, a cut feed."""
        if isinstance(fault, Throttle):
            return self._throttled(fault)
        if isinstance(fault, MalformedXml):
            # An unescaped "&" and a mismatched end tag: what a broken extension can emit.
            body = b'<?xml version="1.0" encoding="UTF-8"?>\n<feed><entry>R&D</feed>'
            return web.Response(body=body, content_type="application/atom+xml", charset="UTF-8")
        if isinstance(fault, HtmlPage):
            page = (
                "<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>"
                "<body>Checking your browser before accessing the board.</body></html>"
            )
            return web.Response(text=page, content_type="text/html", charset="UTF-8")
        if isinstance(fault, EntityExpansion):
            body = (
                b'<?xml version="1.0"?>\n<!DOCTYPE feed [\n <!ENTITY a "aaaaaaaaaa">\n'
                b' <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n'
                b' <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n]>\n'
                b'<feed xmlns="http://www.w3.org/2005/Atom"><title>&c;</title></feed>'
            )
            return web.Response(body=body, content_type="application/atom+xml", charset="UTF-8")
        full, content_type = self._truncated_sample(request)
        return web.Response(body=full[: len(full) // 2], content_type=content_type, charset="UTF-8")

    def _throttled(self, fault: Throttle) -> web.Response:
        """[PROXY] / [BUSY]: the throttle page, Retry-After as of the board's clock."""
        if fault.status == 503 and fault.retry_after == "none":
            return self._error_page(503, BOARD_UNAVAILABLE)  # [BUSY]: phpBB's own
        return _server_page(fault.status, fault.reason(), fault.headers(self._now()))

    def _truncated_sample(self, request: web.Request) -> tuple[bytes, str]:
        """A realistic feed body to cut in half: the overall feed (padded if the board is new)."""
        _, posts, _ = self._overall_feed()
        feed = self._render_feed(request, "", posts, prefix_forum=True).body
        padded = feed.replace(b"</feed>", b"<!--" + b"x" * 600 + b"-->")
        return (feed if len(feed) > 600 else padded), "application/atom+xml"
