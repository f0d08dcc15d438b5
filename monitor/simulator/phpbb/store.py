"""The board's forums, topics and posts, and the methods tests script them with."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from monitor.simulator.base import find
from monitor.simulator.phpbb.model import (
    ANONYMOUS,
    EntryField,
    LinkStyle,
    RecordedRequest,
    _Forum,
    _Post,
    _render_text,
    _Topic,
    _unix,
)


class PhpbbStore:
    """One phpBB 3.3 board's content and feed settings, as a test sets them up and breaks them."""

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
        """Answer every read of this topic's feed with `status` (forum feeds still list it)."""
        # 403 and 404 are phpBB's own answers [FTEST] [TOPIC]; 503 its General Error page
        # [GENERAL]; 400 and 500 what the server or a firewall in front sends [PROXY].
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

    # --- model helpers --------------------------------------------------------------------

    def _guest_sees(self, post: _Post) -> bool:
        topic = self._topics.get(post.topic_id)
        return (
            post.visibility == "approved" and topic is not None and topic.visibility == "approved"
        )

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
