"""The forum's users, topics and posts, the methods tests script them with, request accounting."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from monitor.clock import Clock, SystemClock
from monitor.simulator import base
from monitor.simulator.discourse.model import (
    _WINDOW,
    REGULAR,
    SMALL_ACTION,
    SYSTEM_USER_ID,
    TOPICS_PER_PAGE,
    WHISPER,
    RecordedRequest,
    _aware,
    _Category,
    _Limiter,
    _Post,
    _slugify,
    _Topic,
    _User,
)


class DiscourseStore:
    """One Discourse site's content and API key, as a test sets them up and breaks them."""

    def __init__(
        self,
        *,
        api_key: str,
        api_username: str = "system",
        clock: Clock | None = None,
        title: str = "Acme Community",
        admin_api_per_minute: int | None = 60,
        per_page: int = TOPICS_PER_PAGE,
        login_required: bool = True,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.api_username = api_username
        self.title = title
        self.clock: Clock = clock or SystemClock()
        self.per_page = per_page
        # False: anonymous visitors may read (what a browser sees, without whispers or spam).
        self.login_required = login_required
        self.key_revoked = False
        self.requests: list[RecordedRequest] = []
        self._limiter = _Limiter(per_minute=admin_api_per_minute) if admin_api_per_minute else None
        self._users: dict[int, _User] = {}
        self._categories: dict[int, _Category] = {}
        self._topics: dict[int, _Topic] = {}
        self._posts: dict[int, _Post] = {}
        self._next_user = 1
        self._next_topic = 101
        self._next_post = 1001
        # Single objects that fail on purpose: topic id -> HTTP status; post id -> fields.
        self._failing_topics: dict[int, int] = {}
        self._dropped_fields: dict[int, frozenset[str]] = {}
        self._orphans: set[int] = set()
        self._users[SYSTEM_USER_ID] = _User(
            id=SYSTEM_USER_ID, username="system", name="system", admin=True, trust_level=4
        )
        self.uncategorized = self.add_category("uncategorized", "Uncategorized")

    # --- scripting: people and places ---------------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        name: str | None = None,
        admin: bool = False,
        moderator: bool = False,
        group: str | None = None,
        user_id: int | None = None,
    ) -> int:
        """Register a user; `group` becomes their primary group. Returns the user id."""
        if self._user_by_name(username) is not None:
            raise ValueError(f"username {username!r} is taken")
        uid = user_id if user_id is not None else self._next_user
        self._next_user = max(self._next_user, uid + 1)
        self._users[uid] = _User(
            id=uid,
            username=username,
            name=name if name is not None else username.title(),
            admin=admin,
            moderator=moderator,
            primary_group=group,
            trust_level=4 if admin or moderator else 1,
        )
        return uid

    def add_category(self, slug: str, name: str | None = None) -> int:
        """Create a category; returns its id."""
        category_id = len(self._categories) + 1
        self._categories[category_id] = _Category(
            id=category_id, slug=slug, name=name or slug.title()
        )
        return category_id

    # --- scripting: topics and posts ----------------------------------------------------------

    def add_topic(
        self,
        *,
        title: str,
        author: str,
        created_at: datetime,
        text: str,
        category_id: int | None = None,
        pinned: bool = False,
    ) -> int:
        """Open a topic with its first post; returns the topic id."""
        user = self._user(author)
        topic_id = self._next_topic
        self._next_topic += 1
        created = _aware(created_at)
        self._topics[topic_id] = _Topic(
            id=topic_id,
            title=title,
            slug=_slugify(title),
            category_id=category_id or self.uncategorized,
            user_id=user.id,
            created_at=created,
            bumped_at=created,
            pinned=pinned,
        )
        self._new_post(topic_id, user, created, text)
        return topic_id

    def add_post(
        self,
        topic_id: int,
        *,
        author: str,
        created_at: datetime,
        text: str,
        reply_to: int | None = None,
        post_type: int = REGULAR,
        action_code: str | None = None,
    ) -> int:
        """Reply in a topic (`reply_to` = a post number); returns the post id."""
        topic = self._topic(topic_id)
        if reply_to is not None and not any(
            p.topic_id == topic_id and p.post_number == reply_to for p in self._posts.values()
        ):
            raise KeyError(f"topic {topic_id} has no post number {reply_to}")
        post = self._new_post(
            topic_id,
            self._user(author),
            _aware(created_at),
            text,
            reply_to=reply_to,
            post_type=post_type,
            action_code=action_code,
        )
        # Only regular posts bump the topic, as on Discourse (whispers and small actions do not).
        if post_type == REGULAR and post.created_at > topic.bumped_at:
            self._topics[topic_id] = replace(topic, bumped_at=post.created_at)
        return post.id

    def whisper(self, topic_id: int, *, author: str, created_at: datetime, text: str) -> int:
        """A staff-only whisper (post_type 4)."""
        return self.add_post(
            topic_id, author=author, created_at=created_at, text=text, post_type=WHISPER
        )

    def small_action(
        self,
        topic_id: int,
        *,
        author: str,
        created_at: datetime,
        action_code: str = "closed.enabled",
    ) -> int:
        """A small-action event post (post_type 3), e.g. a topic being closed."""
        return self.add_post(
            topic_id,
            author=author,
            created_at=created_at,
            text="",
            post_type=SMALL_ACTION,
            action_code=action_code,
        )

    def post_id(self, topic_id: int, post_number: int) -> int:
        """The id of a topic's post by its number."""
        for post in self._posts.values():
            if post.topic_id == topic_id and post.post_number == post_number:
                return post.id
        raise KeyError(f"topic {topic_id} has no post number {post_number}")

    def post_number(self, post_id: int) -> int:
        """The number of a post inside its topic."""
        return self._post(post_id).post_number

    def edit(self, post_id: int, text: str) -> None:
        """Change a post's text (a new revision; created_at stays)."""
        post = self._post(post_id)
        self._posts[post_id] = replace(
            post, raw=text, version=post.version + 1, updated_at=self._now()
        )

    def hide(self, post_id: int) -> None:
        """Hide a post (flagged): still listed, with `hidden: true`."""
        self._posts[post_id] = replace(self._post(post_id), hidden=True)

    def unhide(self, post_id: int) -> None:
        """Make a hidden post visible again."""
        self._posts[post_id] = replace(self._post(post_id), hidden=False)

    def withdraw(self, post_id: int) -> None:
        """The author deletes their own post [WITHDRAWN]."""
        self._posts[post_id] = replace(self._post(post_id), user_deleted=True)

    def delete(self, post_id: int) -> None:
        """Staff delete a post; deleting post 1 deletes the whole topic, as on Discourse."""
        post = self._post(post_id)
        now = self._now()
        self._posts[post_id] = replace(post, deleted_at=now)
        if post.post_number == 1:
            self._topics[post.topic_id] = replace(self._topic(post.topic_id), deleted_at=now)

    def recover(self, post_id: int) -> None:
        """Undo a deletion (a topic comes back with its first post)."""
        post = self._post(post_id)
        self._posts[post_id] = replace(post, deleted_at=None, user_deleted=False)
        if post.post_number == 1:
            self._topics[post.topic_id] = replace(self._topic(post.topic_id), deleted_at=None)

    def move_topic(self, topic_id: int, category_id: int) -> None:
        """Move a topic to another category."""
        self._topics[topic_id] = replace(self._topic(topic_id), category_id=category_id)

    def fail_topic(self, topic_id: int, status: int) -> None:
        """Answer every read of this topic (/t/{id}.json and its posts.json) with `status`."""
        # 403 is a topic the API user may not see (moved to a private category) and 404 one
        # that is gone: neither is listed any more, as on Discourse. 400 and 5xx stay listed.
        self._topic(topic_id)
        if status not in (400, 403, 404) and status < 500:
            raise ValueError(f"fail_topic knows 400, 403, 404 and 5xx, not {status}")
        self._failing_topics[topic_id] = status

    def heal_topic(self, topic_id: int) -> None:
        """Undo `fail_topic`."""
        self._failing_topics.pop(topic_id, None)

    def drop_post_fields(self, post_id: int, *fields: str) -> None:
        """Serve this post without these keys (e.g. "created_at", "post_number") [BROKEN]."""
        self._post(post_id)
        self._dropped_fields[post_id] = self._dropped_fields.get(post_id, frozenset()) | set(fields)

    def orphan_post(self, post_id: int) -> None:
        """The post's author was deleted: served with a null user [ORPHAN]."""
        self._post(post_id)
        self._orphans.add(post_id)

    def revoke_key(self) -> None:
        """Revoke the API key: every request now fails with invalid_api_credentials [AUTH]."""
        self.key_revoked = True

    def restore_key(self) -> None:
        """Undo `revoke_key` (as if the operator configured a new key with the same value)."""
        self.key_revoked = False

    # --- request accounting -------------------------------------------------------------------

    def requests_to(self, path_contains: str) -> list[RecordedRequest]:
        """Recorded requests whose path contains the substring."""
        return [r for r in self.requests if path_contains in r.path]

    def max_requests_per_minute(self) -> int:
        """The most requests received inside any 60-second window of the fake clock."""
        times = sorted(r.at for r in self.requests)
        best, start = 0, 0
        for end, moment in enumerate(times):
            while times[start] <= moment - _WINDOW:
                start += 1
            best = max(best, end - start + 1)
        return best

    def count_status(self, status: int) -> int:
        """How many requests were answered with `status`."""
        return sum(1 for r in self.requests if r.status == status)

    # --- lookups ------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock.now()

    def _new_post(
        self,
        topic_id: int,
        user: _User,
        created: datetime,
        text: str,
        *,
        reply_to: int | None = None,
        post_type: int = REGULAR,
        action_code: str | None = None,
    ) -> _Post:
        post = _Post(
            id=self._next_post,
            topic_id=topic_id,
            post_number=self._highest_post_number(topic_id) + 1,
            user_id=user.id,
            raw=text,
            created_at=created,
            updated_at=created,
            reply_to_post_number=reply_to,
            post_type=post_type,
            action_code=action_code,
        )
        self._next_post += 1
        self._posts[post.id] = post
        return post

    def _all_posts(self, topic_id: int) -> list[_Post]:
        return sorted(
            (p for p in self._posts.values() if p.topic_id == topic_id),
            key=lambda p: p.post_number,
        )

    def _regular_posts(self, topic_id: int) -> list[_Post]:
        return [
            p for p in self._all_posts(topic_id) if p.post_type == REGULAR and p.deleted_at is None
        ]

    def _posts_by_number(self, topic_id: int) -> dict[int, _Post]:
        return {p.post_number: p for p in self._all_posts(topic_id)}

    def _highest_post_number(self, topic_id: int) -> int:
        return max(
            (p.post_number for p in self._posts.values() if p.topic_id == topic_id), default=0
        )

    def _user(self, username: str) -> _User:
        user = self._user_by_name(username)
        if user is None:
            raise KeyError(f"no user {username!r}; add_user() first")
        return user

    def _user_by_name(self, username: str) -> _User | None:
        lower = username.lower()
        return next((u for u in self._users.values() if u.username.lower() == lower), None)

    def _topic(self, topic_id: int) -> _Topic:
        return base.find(self._topics, topic_id, "topic")

    def _post(self, post_id: int) -> _Post:
        return base.find(self._posts, post_id, "post")
