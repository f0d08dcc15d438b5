"""The Atom feeds ([TPL], [CTRL], [FORUM], [TOPIC], [TOPICS]) and the board's error pages."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from datetime import UTC, datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime

from aiohttp import web

from monitor.simulator.phpbb.model import (
    ANONYMOUS,
    NO_FEED,
    NO_FORUM,
    NO_TOPIC,
    SORRY_AUTH_READ,
    SORRY_AUTH_READ_TOPIC,
    _Feed,
    _Post,
)
from monitor.simulator.phpbb.store import PhpbbStore


class PhpbbFeeds(PhpbbStore):
    """Feeds and error pages rendered from the store, as a guest sees them."""

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


def _server_page(
    status: int, reason: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The bare error page of the web server or proxy in front of the board [PROXY]."""
    line = f"{status} {reason}"
    page = f"<html><head><title>{line}</title></head><body><h1>{line}</h1></body></html>"
    return web.Response(status=status, text=page, content_type="text/html", headers=headers)
