"""A fake phpBB board serving Atom forum/topic feeds (conditional requests, faults) over HTTP.

Wire formats are imitated from phpBB's own code and from feeds captured on real boards, not from
our reading of the docs. Sources, cited by tag next to the code that imitates them:
[TPL]    The Atom template, phpbb/phpbb phpBB/styles/all/template/feed.xml.twig: entry order
         author, updated, published, id, link, title (CDATA), category (only with statistics and
         a forum name), content type="html" with xml:base and a CDATA body that ends in
         `<p>Statistics: ...</p><hr />`. Note the stray space in `{{ row.updated }} ` when a post
         was edited.
[CTRL]   phpbb/phpbb phpBB/phpbb/feed/controller/feed.php: routes /feed, /feed/forum/{id},
         /feed/topic/{id}; Content-Type application/atom+xml; charset=UTF-8; Last-Modified = the
         newest published/updated time of the entries (the current time when there is none);
         no ETag, no 304 of its own; feed disabled -> 404; unauthorized -> 403.
[POST]   phpBB/phpbb/feed/post_base.php: entry link `viewtopic.php?t={topic}&amp;p={post}#p{post}`,
         published = post_time, updated = post_edit_time, statistics "Posted by <a
         href=memberlist.php?mode=viewprofile&amp;u=N>name</a> — date" (separator U+2014).
[TOPIC]  phpBB/phpbb/feed/topic.php: the newest `feed_limit_post` posts of one topic,
         `ORDER BY p.post_time DESC, p.post_id DESC`; a topic that is not approved (soft-deleted,
         unapproved) -> 403 for guests, a missing topic -> 404 (no_topic_exception).
[FORUM]  phpBB/phpbb/feed/forum.php and overall.php: take the `feed_limit_post` most recently
         active topics, then their posts newer than the last of those topics' last post time,
         newest first, limited to `feed_limit_post`; titles prefixed "Forum name • ".
[TOPICS] phpBB/phpbb/feed/topics.php and topic_base.php: /feed/topics (= topics_new) lists the
         first post of the `feed_limit_topic` (default 10) newest topics, linked
         `viewtopic.php?t={topic}&amp;p={first post}`, title "Forum • topic title", statistics
         with "Replies N — Views N".
[HELPER] phpBB/phpbb/feed/helper.php format_date(): `gmdate("Y-m-d\\TH:i:s", t + offset)` plus
         the board's *current* offset ("+01:00") for every date; control characters (newlines)
         are removed from the content, line breaks are already `<br>`.
[LIMIT]  Default `feed_limit_post` = 15: phpBB's install schema_data.sql.
[FTEST]  phpbb/phpbb tests/functional/feed_test.php: soft-deleted and unapproved posts are left
         out for guests; a soft-deleted/unapproved topic's feed answers 403 SORRY_AUTH_READ_TOPIC;
         a forum excluded from feeds answers 404 NO_FEED; feeds live under app.php/feed.
[COMPAT] phpbb/phpbb tests/functional/controllers_compatibility_test.php: the old
         `feed.php?f=1` / `feed.php?t=1` URLs answer 301 to app.php/feed/forum/1, /topic/1.
[REAL30] Captured phpBB 3.0 topic feeds of classicshell.net in coddec/Classic-Shell
         (www.classicshell.net/forum/feed*.php): dates like `2013-10-14T11:45:02-07:00`,
         `<author><name><![CDATA[...]]></name></author>`, smilies as `<img ... alt=":o">`,
         `Statistics: Posted by Guest — ...` for guests.
[POSTONLY] Newer 3.3 boards link entries as `viewtopic.php?p={post}#p{post}` without the topic id
         (a captured pokerth.net feed slice in a public test script; stardot.org.uk notes "A feed
         entry links only to viewtopic.php?p=<post>"); `link_style="post_only"` imitates them.
         Their topic pages carry `<link rel="canonical" href=".../viewtopic.php?t=N">`
         (a captured forums.nesdev.org page; phpbb/phpbb#2468).
[BUSY]   phpbb/phpbb phpBB/phpbb/session.php session_create(): more new sessions in a minute than
         the ACP "Limit sessions" (`active_sessions`) -> `send_status_line(503, 'Service
         Unavailable')` + BOARD_UNAVAILABLE, without Retry-After. A feed reader sends no cookie,
         so every request of ours starts a session: a busy board refuses every Nth of them.
[GENERAL] phpBB/includes/functions.php msg_handler(), E_USER_ERROR ("General Error", e.g. an SQL
         error while rendering one topic): "Do not send 200 OK, but service unavailable on
         errors" -> 503, no Retry-After, on every read of that topic.
[PROXY]  What sits in front of a board: nginx limit_req answers 503 by default
         (`limit_req_status 503`; 429 once configured, mitchellkrogza/nginx-ultimate-bad-bot-
         blocker#533), a CDN or host throttle 429 with Retry-After in seconds or as an HTTP-date
         (RFC 9110 section 10.2.3 allows both), a PHP fatal error a bare 500, a web application
         firewall a 400. phpBB's feed controller itself answers only 404 and 403
         (phpBB/phpbb/feed/controller/feed.php).
[BROKEN] An entry without <published>/<updated>, without <id>/<link> or without <author>
         comes from no phpBB version we know of; it stands for an extension or a proxy that
         rewrites feeds, so the client's "one bad object never stops the source" can be tested.
Conditional requests (ETag / If-Modified-Since -> 304) are what a cache or proxy in front of the
board adds ([CTRL]: phpBB itself only sends Last-Modified); `etag` and `honour_conditionals`
switch them off to imitate a bare board.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from typing import Literal

from aiohttp import web

from monitor.simulator.base import (
    DROPPED,
    Delay,
    Disconnect,
    FakeServer,
    HttpStatus,
    RetryAfter,
    Throttle,
    TruncatedBody,
    find,
)

__all__ = [
    "ANONYMOUS",
    "BOARD_UNAVAILABLE",
    "NO_FEED",
    "NO_FORUM",
    "NO_POST",
    "NO_TOPIC",
    "SORRY_AUTH_READ",
    "SORRY_AUTH_READ_TOPIC",
    "CutFeed",
    "Delay",
    "Disconnect",
    "EntityExpansion",
    "EntryField",
    "FakePhpbbBoard",
    "Fault",
    "HtmlPage",
    "HttpStatus",
    "LinkStyle",
    "MalformedXml",
    "RecordedRequest",
    "RetryAfter",
    "Throttle",
    "TruncatedBody",
    "Visibility",
    "rate_limited",
]

ANONYMOUS = 1  # phpBB's guest user id
LinkStyle = Literal["topic_and_post", "post_only"]
Visibility = Literal["approved", "unapproved", "deleted"]
# What an entry can be served without [BROKEN].
EntryField = Literal["published", "updated", "id", "link", "author"]

# English language strings of the error pages [FTEST] (wording as in phpBB's en pack; the
# adapter never depends on it).
NO_TOPIC = "The requested topic does not exist."
NO_FORUM = "The forum you selected does not exist."
NO_FEED = "The requested feed is not available."
NO_POST = "The requested post does not exist."
SORRY_AUTH_READ_TOPIC = "You are not authorised to read this topic."
SORRY_AUTH_READ = "You are not authorised to read this forum."
BOARD_UNAVAILABLE = (
    "Sorry but the board is temporarily unavailable, please try again in a few minutes."
)


# --- faults -------------------------------------------------------------------------------


def rate_limited(status: int = 429, retry_after: str = "120") -> HttpStatus:
    """A proxy's throttle answer (phpBB has no rate limit of its own): 429 or 503 + Retry-After."""
    reason = "Too Many Requests" if status == 429 else "Service Temporarily Unavailable"
    return HttpStatus(
        status=status,
        body=f"<html><head><title>{status} {reason}</title></head>"
        f"<body><center><h1>{status} {reason}</h1></center></body></html>",
        headers={"Retry-After": retry_after},
    )


@dataclass(frozen=True, kw_only=True)
class MalformedXml:
    """Answer 200 with the Atom content type and a body that is not well-formed XML."""


@dataclass(frozen=True, kw_only=True)
class CutFeed:
    """Answer 200 with a complete HTTP body that holds only the first half of the feed.

    What a board that dies mid-render (PHP fatal error, memory limit) sends: the transfer is
    fine, the XML is not.
    """


@dataclass(frozen=True, kw_only=True)
class HtmlPage:
    """Answer 200 with an HTML page (a captive portal or a proxy's challenge) instead of a feed."""


@dataclass(frozen=True, kw_only=True)
class EntityExpansion:
    """Answer 200 with a feed that declares and nests XML entities ("billion laughs")."""


Fault = (
    HttpStatus
    | Throttle
    | Delay
    | MalformedXml
    | TruncatedBody
    | CutFeed
    | HtmlPage
    | EntityExpansion
    | Disconnect
)


@dataclass(kw_only=True)
class RecordedRequest:
    """One request the fake received; `status` is None when the connection was dropped."""

    path: str
    query: dict[str, str]
    if_none_match: str | None
    if_modified_since: str | None
    status: int | None = None


# --- board model --------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Forum:
    id: int
    name: str
    guest_readable: bool = True
    excluded_from_feeds: bool = False


@dataclass(kw_only=True)
class _Topic:
    id: int
    forum_id: int
    title: str
    visibility: Visibility = "approved"


@dataclass(kw_only=True)
class _Post:
    id: int
    topic_id: int
    author: str  # as phpBB stores it: HTML-escaped (request->variable applies htmlspecialchars)
    author_id: int
    subject: str
    html: str
    time: int  # unix seconds
    edit_time: int = 0
    visibility: Visibility = "approved"


@dataclass(frozen=True, kw_only=True)
class _Feed:
    """A rendered feed: the body and its validators."""

    body: bytes
    last_modified: datetime
    etag: str


class FakePhpbbBoard(FakeServer[Fault]):
    """A scriptable fake phpBB 3.3 board whose Atom feeds are served over real HTTP.

    Use `await start()` / `await stop()` and `base_url` (the board URL, e.g.
    `http://127.0.0.1:PORT/forum`), or mount `make_app()` yourself.
    """

    def __init__(
        self,
        *,
        sitename: str = "Acme Community",
        site_desc: str = "Questions and answers about Acme products",
        utc_offset: timedelta = timedelta(hours=1),
        feed_limit: int = 15,  # [LIMIT]
        feed_limit_topic: int = 10,  # [LIMIT]
        link_style: LinkStyle = "topic_and_post",
        statistics: bool = True,
        etag: bool = True,
        honour_conditionals: bool = True,
        path_prefix: str = "/forum",
        first_topic_id: int = 101,
        first_post_id: int = 1001,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.sitename = sitename
        self.site_desc = site_desc
        # [HELPER]: phpBB prints every date with the board's current offset.
        self.utc_offset = utc_offset
        self.feed_limit = feed_limit
        self.feed_limit_topic = feed_limit_topic
        self.link_style: LinkStyle = link_style
        self.statistics = statistics
        self.etag = etag
        self.honour_conditionals = honour_conditionals
        self.feeds_enabled = True
        self.new_topics_feed = True  # ACP "feed_topics_new"
        self.path_prefix = path_prefix.rstrip("/")
        self.requests: list[RecordedRequest] = []
        self._now = now or (lambda: datetime.now(UTC))
        self._forums: dict[int, _Forum] = {}
        self._topics: dict[int, _Topic] = {}
        self._posts: dict[int, _Post] = {}
        self._users: dict[str, int] = {}
        self._next_topic = first_topic_id
        self._next_post = first_post_id
        self._next_user = 53  # a fresh install has the admin (2) and 50-odd bots below this
        # Single objects that fail on purpose: topic id -> HTTP status; post id -> fields left out.
        self._failing_topics: dict[int, int] = {}
        self._dropped_fields: dict[int, frozenset[str]] = {}

    # --- scripting ------------------------------------------------------------------------

    def add_forum(self, forum_id: int, name: str, *, guest_readable: bool = True) -> int:
        """Create a forum guests can (or cannot) read."""
        self._forums[forum_id] = _Forum(id=forum_id, name=name, guest_readable=guest_readable)
        return forum_id

    def exclude_forum_from_feeds(self, forum_id: int, excluded: bool = True) -> None:
        """The ACP "exclude from feeds" option: its feeds (and its topics' feeds) answer 404."""
        self._forum(forum_id).excluded_from_feeds = excluded

    def add_topic(
        self,
        *,
        forum_id: int,
        title: str,
        author: str | None,
        created_at: datetime,
        text: str,
        approved: bool = True,
    ) -> tuple[int, int]:
        """Start a topic with its first post; author None = a guest. Returns (topic, post)."""
        self._forum(forum_id)
        topic_id = self._next_topic
        self._next_topic += 1
        self._topics[topic_id] = _Topic(
            id=topic_id,
            forum_id=forum_id,
            title=title,
            visibility="approved" if approved else "unapproved",
        )
        post_id = self._new_post(
            topic_id=topic_id,
            author=author,
            created_at=created_at,
            subject=title,
            text=text,
            approved=approved,
        )
        return topic_id, post_id

    def add_post(
        self,
        *,
        topic_id: int,
        author: str | None,
        created_at: datetime,
        text: str,
        subject: str | None = None,
        approved: bool = True,
        html_body: str | None = None,
    ) -> int:
        """Reply to a topic ("Re: title" subject); approved=False = waiting in the mod queue."""
        topic = self._topic(topic_id)
        return self._new_post(
            topic_id=topic_id,
            author=author,
            created_at=created_at,
            subject=subject if subject is not None else f"Re: {topic.title}",
            text=text,
            approved=approved,
            html_body=html_body,
        )

    def edit(self, post_id: int, text: str, *, edited_at: datetime) -> None:
        """Change a post's text; phpBB records post_edit_time (shown as `<updated>`)."""
        post = self._post(post_id)
        post.html = _render_text(text)
        post.edit_time = _unix(edited_at)

    def approve(self, post_id: int) -> None:
        """Approve a queued post (it appears in guest feeds with its original post time)."""
        self._post(post_id).visibility = "approved"

    def soft_delete(self, post_id: int) -> None:
        """Soft-delete a post: guests no longer see it [FTEST]."""
        self._post(post_id).visibility = "deleted"

    def restore(self, post_id: int) -> None:
        """Undo a soft delete."""
        self._post(post_id).visibility = "approved"

    def delete(self, post_id: int) -> None:
        """Delete a post permanently; deleting a topic's only post deletes the topic."""
        post = self._post(post_id)
        del self._posts[post_id]
        if not any(p.topic_id == post.topic_id for p in self._posts.values()):
            del self._topics[post.topic_id]

    def soft_delete_topic(self, topic_id: int) -> None:
        """Soft-delete a topic: its feed answers 403 to guests [FTEST], forum feeds drop it."""
        self._topic(topic_id).visibility = "deleted"

    def restore_topic(self, topic_id: int) -> None:
        """Undo a topic soft delete."""
        self._topic(topic_id).visibility = "approved"

    def delete_topic(self, topic_id: int) -> None:
        """Delete a topic with all its posts: its feed answers 404 [TOPIC]."""
        self._topic(topic_id)
        del self._topics[topic_id]
        for post_id in [p.id for p in self._posts.values() if p.topic_id == topic_id]:
            del self._posts[post_id]

    def fail_topic(self, topic_id: int, status: int) -> None:
        """Answer every read of this topic's feed with `status` (forum feeds still list it).

        403 and 404 are phpBB's own answers [FTEST] [TOPIC]; 503 its General Error page
        [GENERAL]; 400 and 500 what the server or a firewall in front sends [PROXY].
        """
        self._topic(topic_id)
        if status not in (400, 403, 404, 500, 503):
            raise ValueError(f"fail_topic knows 400, 403, 404, 500 and 503, not {status}")
        self._failing_topics[topic_id] = status

    def heal_topic(self, topic_id: int) -> None:
        """Undo `fail_topic`."""
        self._failing_topics.pop(topic_id, None)

    def drop_entry_fields(self, post_id: int, *fields: EntryField) -> None:
        """Serve this post's entries without these elements, in every feed [BROKEN]."""
        self._post(post_id)
        self._dropped_fields[post_id] = self._dropped_fields.get(post_id, frozenset()) | set(fields)

    def posts(self) -> list[int]:
        """The ids of every post a guest may see (what a complete read must deliver)."""
        return sorted(p.id for p in self._posts.values() if self._guest_sees(p))

    def first_post_id(self, topic_id: int) -> int:
        """The id of a topic's first post (visible or not)."""
        return min(p.id for p in self._posts.values() if p.topic_id == topic_id)

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

    # --- feeds ----------------------------------------------------------------------------

    def _topic_feed(self, topic_id: int) -> web.Response | tuple[str, list[_Post], bool]:
        """[TOPIC]: the newest posts of one topic, or the error phpBB answers for it."""
        topic = self._topics.get(topic_id)
        if topic is None:
            return self._error_page(404, NO_TOPIC)
        failing = self._failing_topics.get(topic_id)
        if failing is not None:
            return self._topic_failure(failing)
        if topic.visibility != "approved":
            return self._error_page(403, SORRY_AUTH_READ_TOPIC)
        forum = self._forums[topic.forum_id]
        if forum.excluded_from_feeds:
            return self._error_page(404, NO_FEED)
        if not forum.guest_readable:
            return self._error_page(403, SORRY_AUTH_READ)
        posts = sorted(
            (p for p in self._posts.values() if p.topic_id == topic_id and self._guest_sees(p)),
            key=lambda p: (p.time, p.id),
            reverse=True,
        )[: self.feed_limit]
        return f"topic/{topic_id}", posts, False

    def _topic_failure(self, status: int) -> web.Response:
        """How one topic's feed fails: phpBB's own pages, or the server's in front of it."""
        if status == 403:
            return self._error_page(403, SORRY_AUTH_READ_TOPIC)  # [FTEST]
        if status == 404:
            return self._error_page(404, NO_TOPIC)  # [TOPIC]
        if status == 503:
            return self._general_error()  # [GENERAL]
        reason = "Bad Request" if status == 400 else "Internal Server Error"
        return _server_page(status, reason)  # [PROXY]

    def _general_error(self) -> web.Response:
        """[GENERAL] msg_handler's E_USER_ERROR page, sent with 503."""
        page = (
            "<!DOCTYPE html>\n<html><head><title>General Error</title></head>"
            '<body id="errorpage"><div id="content"><h1>General Error</h1>'
            "<div>SQL ERROR [ mysqli ]</div></div></body></html>"
        )
        return web.Response(status=503, text=page, content_type="text/html", charset="UTF-8")

    def _forum_feed(self, forum_id: int) -> web.Response | tuple[str, list[_Post], bool]:
        """[FORUM]: recent posts of the forum's most recently active topics."""
        forum = self._forums.get(forum_id)
        if forum is None:
            return self._error_page(404, NO_FORUM)
        if forum.excluded_from_feeds:
            return self._error_page(404, NO_FEED)
        if not forum.guest_readable:
            return self._error_page(403, SORRY_AUTH_READ)
        return f"forum/{forum_id}", self._recent_posts({forum_id}), True

    def _overall_feed(self) -> tuple[str, list[_Post], bool]:
        """The board-wide feed (overall.php): the same query over every readable forum."""
        readable = {
            f.id for f in self._forums.values() if f.guest_readable and not f.excluded_from_feeds
        }
        return "", self._recent_posts(readable), True

    def _new_topics_feed(self) -> tuple[str, list[_Post], bool]:
        """[TOPICS]: the first posts of the newest topics of every readable forum."""
        firsts: list[_Post] = []
        for topic in self._topics.values():
            forum = self._forums[topic.forum_id]
            if topic.visibility != "approved" or forum.excluded_from_feeds:
                continue
            if not forum.guest_readable:
                continue
            visible = [p for p in self._posts.values() if p.topic_id == topic.id]
            visible = [p for p in visible if self._guest_sees(p)]
            if visible:
                firsts.append(min(visible, key=lambda p: (p.time, p.id)))
        firsts.sort(key=lambda p: (p.time, p.id), reverse=True)
        return "topics", firsts[: self.feed_limit_topic], True

    def _recent_posts(self, forum_ids: set[int]) -> list[_Post]:
        topics = [
            t
            for t in self._topics.values()
            if t.forum_id in forum_ids and t.visibility == "approved"
        ]
        topic_ids = {t.id for t in topics}
        last: dict[int, tuple[int, int]] = {}
        for post in self._posts.values():
            if post.topic_id in topic_ids and self._guest_sees(post):
                key = (post.time, post.id)
                last[post.topic_id] = max(last.get(post.topic_id, key), key)
        active = sorted(last, key=lambda topic_id: last[topic_id], reverse=True)
        active = active[: self.feed_limit]
        if not active:
            return []
        min_post_time = last[active[-1]][0]
        chosen = set(active)
        posts = [
            p
            for p in self._posts.values()
            if p.topic_id in chosen and self._guest_sees(p) and p.time >= min_post_time
        ]
        posts.sort(key=lambda p: (p.time, p.id), reverse=True)
        return posts[: self.feed_limit]

    def _feed_response(
        self, request: web.Request, outcome: tuple[str, list[_Post], bool]
    ) -> web.Response:
        route, posts, prefix_forum = outcome
        feed = self._render_feed(request, route, posts, prefix_forum=prefix_forum)
        headers = {"Last-Modified": format_datetime(feed.last_modified, usegmt=True)}
        if self.etag:
            headers["ETag"] = feed.etag
        if self.honour_conditionals and self._not_modified(request, feed):
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=feed.body,
            content_type="application/atom+xml",
            charset="UTF-8",
            headers=headers,
        )

    def _not_modified(self, request: web.Request, feed: _Feed) -> bool:
        """RFC 9110 section 13.2.2: If-None-Match wins; If-Modified-Since only without it."""
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            if not self.etag:
                return False
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in tags or feed.etag.removeprefix("W/") in tags
        since = request.headers.get("If-Modified-Since")
        if since is None:
            return False
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return feed.last_modified <= when

    def _render_feed(
        self, request: web.Request, route: str, posts: list[_Post], *, prefix_forum: bool
    ) -> _Feed:
        """[TPL] with the entries of [POST]; dates per [HELPER]."""
        board = self._board_url(request)
        self_link = f"{board}/app.php/feed" + (f"/{route}" if route else "")
        newest = max((max(p.time, p.edit_time) for p in posts), default=0)
        # [CTRL]: "If we do not have any items at all, sending the current time is better".
        updated_unix = newest or int(self._now().timestamp())
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en-gb">\n'
            f'\t<link rel="self" type="application/atom+xml" href="{self_link}" />\n\n'
            f"\t<title>{html.escape(self.sitename)}</title>\n\n"
            f"\t<subtitle>{html.escape(self.site_desc)}</subtitle>\n\n"
            f'\t<link href="{board}/index.php" />\n\n'
            f"\t<updated>{self._rfc3339(updated_unix)}</updated>\n\n"
            f"\t<author><name><![CDATA[{self.sitename}]]></name></author>\n"
            f"\t<id>{self_link}</id>\n\n"
        ]
        topic_based = route == "topics"
        for post in posts:
            parts.append(
                self._render_entry(board, post, prefix_forum=prefix_forum, topic_based=topic_based)
            )
        parts.append("</feed>\n")
        body = "".join(parts).encode("utf-8")
        return _Feed(
            body=body,
            last_modified=datetime.fromtimestamp(updated_unix, UTC),
            etag='"' + hashlib.sha1(body).hexdigest()[:20] + '"',
        )

    def _render_entry(
        self, board: str, post: _Post, *, prefix_forum: bool, topic_based: bool = False
    ) -> str:
        topic = self._topics[post.topic_id]
        forum = self._forums[topic.forum_id]
        if self.link_style == "post_only":
            link = f"{board}/viewtopic.php?p={post.id}#p{post.id}"  # [POSTONLY]
        else:
            link = f"{board}/viewtopic.php?t={topic.id}&amp;p={post.id}#p{post.id}"  # [POST]
        title = topic.title if topic_based else (post.subject or topic.title)
        if prefix_forum:
            title = f"{forum.name} \u2022 {title}"  # [FORUM] separator &bull;
        published = self._rfc3339(post.time)
        # [TPL]: `{{ row.updated }} ` keeps a trailing space when the post was edited.
        updated = f"{self._rfc3339(post.edit_time)} " if post.edit_time else published
        dropped = self._dropped_fields.get(post.id, frozenset())
        lines = {
            "author": f"\t\t<author><name><![CDATA[{post.author}]]></name></author>\n\n",
            "updated": f"\t\t<updated>{updated}</updated>\n\n",
            "published": f"\t\t<published>{published}</published>\n\n",
            "id": f"\t\t<id>{link}</id>\n",
            "link": f'\t\t<link href="{link}"/>\n',
        }
        entry = "\t<entry>\n" + "".join(v for k, v in lines.items() if k not in dropped)
        entry += f'\t\t<title type="html"><![CDATA[{title}]]></title>\n\n'
        if self.statistics and prefix_forum:
            # Topic feeds have no forum_name in their rows, so no category there.
            entry += (
                f'\t\t\t<category term="{html.escape(forum.name)}" '
                f'scheme="{board}/viewforum.php?f={forum.id}" '
                f'label="{html.escape(forum.name)}"/>\n\n'
            )
        statistics = ""
        if self.statistics:
            statistics = f"<p>Statistics: {self._statistics(board, post)}"
            if topic_based:
                replies = sum(
                    1
                    for p in self._posts.values()
                    if p.topic_id == topic.id and self._guest_sees(p)
                )
                statistics += f" \u2014 Replies {replies - 1} \u2014 Views 0"
            statistics += "</p>"
        entry += (
            f'\t\t<content type="html" xml:base="{link}"><![CDATA[\n'
            f"{post.html}{statistics}<hr />\n]]></content>\n"
            "\t</entry>\n"
        )
        return entry

    def _statistics(self, board: str, post: _Post) -> str:
        """[POST] "Posted by <profile link> — date"; guests get no link [REAL30]."""
        if post.author_id == ANONYMOUS:
            who = "Guest"
        else:
            who = (
                f'<a href="{board}/memberlist.php?mode=viewprofile&amp;u={post.author_id}">'
                f"{post.author}</a>"
            )
        local = datetime.fromtimestamp(post.time, UTC) + self.utc_offset
        when = local.strftime("%a %b %d, %Y ") + local.strftime("%I:%M %p").lstrip("0").lower()
        return f"Posted by {who} \u2014 {when}"

    def _rfc3339(self, unix: int) -> str:
        """[HELPER]: wall time in the board offset plus "+HH:MM"."""
        zone = timezone(self.utc_offset)
        return datetime.fromtimestamp(unix, zone).isoformat()

    def _board_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}{self.path_prefix}"

    def _guest_sees(self, post: _Post) -> bool:
        topic = self._topics.get(post.topic_id)
        return (
            post.visibility == "approved" and topic is not None and topic.visibility == "approved"
        )

    def _error_page(self, status: int, message: str) -> web.Response:
        """phpBB's message page ("Information") with the status of the http_exception."""
        page = (
            '<!DOCTYPE html>\n<html dir="ltr" lang="en-gb">\n<head>\n<meta charset="utf-8" />\n'
            f"<title>{html.escape(self.sitename)} - Information</title>\n</head>\n"
            '<body id="phpbb" class="section-app">\n'
            '<div class="panel" id="message">\n\t<div class="inner">\n'
            '\t<h2 class="message-title">Information</h2>\n'
            f"\t<p>{html.escape(message)}</p>\n\t</div>\n</div>\n</body>\n</html>\n"
        )
        return web.Response(status=status, text=page, content_type="text/html", charset="UTF-8")

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

    # --- model helpers --------------------------------------------------------------------

    def _new_post(
        self,
        *,
        topic_id: int,
        author: str | None,
        created_at: datetime,
        subject: str,
        text: str,
        approved: bool,
        html_body: str | None = None,
    ) -> int:
        post_id = self._next_post
        self._next_post += 1
        if author is None:
            stored_name, author_id = "Anonymous", ANONYMOUS
        else:
            stored_name = html.escape(author, quote=True)
            author_id = self._users.setdefault(author, self._next_user)
            if author_id == self._next_user:
                self._next_user += 1
        self._posts[post_id] = _Post(
            id=post_id,
            topic_id=topic_id,
            author=stored_name,
            author_id=author_id,
            subject=html.escape(subject, quote=True),
            html=html_body if html_body is not None else _render_text(text),
            time=_unix(created_at),
            visibility="approved" if approved else "unapproved",
        )
        return post_id

    def _forum(self, forum_id: int) -> _Forum:
        return find(self._forums, forum_id, "forum")

    def _topic(self, topic_id: int) -> _Topic:
        return find(self._topics, topic_id, "topic")

    def _post(self, post_id: int) -> _Post:
        return find(self._posts, post_id, "post")


def _server_page(
    status: int, reason: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The bare error page of the web server or proxy in front of the board [PROXY]."""
    line = f"{status} {reason}"
    page = f"<html><head><title>{line}</title></head><body><h1>{line}</h1></body></html>"
    return web.Response(status=status, text=page, content_type="text/html", headers=headers)


def _render_text(text: str) -> str:
    """Plain text as phpBB renders it into a feed: escaped, line breaks as `<br>` [HELPER]."""
    return html.escape(text, quote=True).replace("\r\n", "\n").replace("\n", "<br>")


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return int(moment.timestamp())
