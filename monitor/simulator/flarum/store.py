"""The forum's content and who may see it ([VIS]), and the methods tests script it with."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.simulator.base import find
from monitor.simulator.flarum.errors import _FAILURE_CODES
from monitor.simulator.flarum.model import (
    _MENTION_SOURCE,
    ADMIN_GROUP,
    ADMIN_USER,
    MOD_GROUP,
    PostField,
    RecordedRequest,
    _aware,
    _builtin_groups,
    _Discussion,
    _Group,
    _Post,
    _Tag,
    _User,
)


class FlarumStore:
    """Groups, users, tags, discussions and posts of one forum, as a test sets them up."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        key_user_id: int | None = None,
        public: bool = True,
        public_url: str | None = None,
        now: Callable[[], datetime] | None = None,
        first_post_id: int = 1,
    ) -> None:
        super().__init__()
        self._now = now or (lambda: datetime.now(UTC))  # for Retry-After as an HTTP-date
        self.api_key = api_key
        # A key bound to a user (api_keys.user_id) ignores the header's userId [AUTH].
        self.key_user_id = key_user_id
        # Guests may view the forum (the viewForum permission of the Guest group) [VIS].
        self.public = public
        self.public_url = public_url
        self.requests: list[RecordedRequest] = []
        self._revoked: str | None = None  # None, "401" or "guest"
        self._groups: dict[int, _Group] = _builtin_groups()
        created = datetime(2020, 1, 1, tzinfo=UTC)
        self._users: dict[int, _User] = {
            ADMIN_USER: _User(
                id=ADMIN_USER,
                username="admin",
                display_name="admin",
                groups=(ADMIN_GROUP,),
                joined_at=created,
            )
        }
        self._tags: dict[int, _Tag] = {}
        self._discussions: dict[int, _Discussion] = {}
        self._posts: dict[int, _Post] = {}
        self._next_id = {
            "users": 2,
            "groups": 5,
            "tags": 1,
            "discussions": 1,
            # A forum with history has post ids far above its discussion ids.
            "posts": first_post_id,
        }
        # Single objects that fail on purpose: discussion id -> status; post id -> fields left out.
        self._failing: dict[int, int] = {}
        self._dropped: dict[int, frozenset[str]] = {}

    # --- scripting: users, groups, tags ---------------------------------------------------

    def add_group(self, singular: str, plural: str | None = None) -> int:
        """Create a group; returns its id."""
        group_id = self._take_id("groups")
        self._groups[group_id] = _Group(id=group_id, singular=singular, plural=plural or singular)
        return group_id

    def add_user(
        self, username: str, *, display_name: str | None = None, groups: Iterable[int] = ()
    ) -> int:
        """Register a user (Members are implicit, as in Flarum); returns the user id."""
        user_id = self._take_id("users")
        self._users[user_id] = _User(
            id=user_id,
            username=username,
            display_name=display_name or username,
            groups=tuple(groups),
            joined_at=datetime(2021, 1, 1, tzinfo=UTC),
        )
        return user_id

    def delete_user(self, user_id: int) -> None:
        """Delete a user; their posts stay, without an author (as in Flarum)."""
        del self._users[user_id]

    def add_tag(self, slug: str, name: str | None = None) -> int:
        """Create a tag (flarum/tags); returns its id."""
        tag_id = self._take_id("tags")
        self._tags[tag_id] = _Tag(id=tag_id, name=name or slug.title(), slug=slug)
        return tag_id

    # --- scripting: discussions and posts -------------------------------------------------

    def add_discussion(
        self,
        *,
        title: str,
        author: int | None,
        created_at: datetime,
        content: str,
        tags: Iterable[int] = (),
    ) -> tuple[int, int]:
        """Start a discussion; returns (discussion id, first post id)."""
        _aware(created_at)
        discussion_id = self._take_id("discussions")
        self._discussions[discussion_id] = _Discussion(
            id=discussion_id,
            title=title,
            user_id=author,
            created_at=created_at,
            tag_ids=tuple(tags),
        )
        return discussion_id, self._add(discussion_id, author, created_at, "comment", content)

    def add_post(
        self,
        discussion_id: int,
        *,
        author: int | None,
        created_at: datetime,
        content: str,
        reply_to: int | None = None,
    ) -> int:
        """Reply in a discussion; `reply_to` prefixes a post mention, as the Reply button does."""
        _aware(created_at)
        if reply_to is not None:
            target = self._post(reply_to)
            name = self._display_name(target.user_id)
            content = f'@"{name}"#p{reply_to} {content}'  # [MENTION]
        return self._add(discussion_id, author, created_at, "comment", content)

    def event_post(
        self,
        discussion_id: int,
        *,
        type: str,  # Flarum's own name for it (posts.type)
        content: Any,
        created_at: datetime,
        author: int | None = ADMIN_USER,
    ) -> int:
        """Add an event post such as discussionLocked ({"locked": true}) or discussionStickied."""
        _aware(created_at)
        if type == "comment":
            raise ValueError("use add_post for comments")
        return self._add(discussion_id, author, created_at, type, content)

    def rename(
        self, discussion_id: int, title: str, *, at: datetime, author: int | None = ADMIN_USER
    ) -> int:
        """Rename a discussion; like Flarum this adds a discussionRenamed event post."""
        discussion = self._discussion(discussion_id)
        old, discussion.title = discussion.title, title
        return self.event_post(
            discussion_id,
            type="discussionRenamed",
            content=[old, title],
            created_at=at,
            author=author,
        )

    def edit(self, post_id: int, content: str, *, at: datetime) -> None:
        """Edit a comment: new text and editedAt; createdAt stays; a reply keeps its mention."""
        post = self._post(post_id)
        if post.type != "comment":
            raise ValueError("only comments can be edited")
        mention = _MENTION_SOURCE.match(post.content)
        post.content = content if mention is None or "#p" in content else f"{mention[0]} {content}"
        post.edited_at = _aware(at)

    def hide(self, post_id: int, *, at: datetime) -> None:
        """Hide a post (the "Delete" of Flarum's UI: soft, moderators still see it)."""
        self._post(post_id).hidden_at = _aware(at)

    def unhide(self, post_id: int) -> None:
        """Restore a hidden post."""
        self._post(post_id).hidden_at = None

    def delete(self, post_id: int) -> None:
        """Delete a post forever ("Delete Forever"): it disappears from every response."""
        self._post(post_id)
        del self._posts[post_id]

    def hide_discussion(self, discussion_id: int, *, at: datetime) -> None:
        """Hide (soft-delete) a whole discussion."""
        self._discussion(discussion_id).hidden_at = _aware(at)

    def delete_discussion(self, discussion_id: int) -> None:
        """Delete a discussion and its posts forever."""
        self._discussion(discussion_id)
        del self._discussions[discussion_id]
        for post_id in [p.id for p in self._posts.values() if p.discussion_id == discussion_id]:
            del self._posts[post_id]

    def fail_discussion(self, discussion_id: int, status: int) -> None:
        """Answer every read of this discussion (show, and its posts list) with `status` [FAIL]."""
        # The discussion list still shows it, as Flarum would for an error raised while
        # serializing or authorizing that one discussion.
        self._discussion(discussion_id)
        if status not in _FAILURE_CODES:
            raise ValueError(f"fail_discussion knows {sorted(_FAILURE_CODES)}, not {status}")
        self._failing[discussion_id] = status

    def heal_discussion(self, discussion_id: int) -> None:
        """Undo `fail_discussion`."""
        self._failing.pop(discussion_id, None)

    def drop_post_fields(self, post_id: int, *fields: PostField) -> None:
        """Serve this post without these attributes / its `user` relationship / its id."""
        self._post(post_id)
        self._dropped[post_id] = self._dropped.get(post_id, frozenset()) | set(fields)

    def dropped_fields(self, post_id: int) -> frozenset[str]:
        """What `drop_post_fields` left out of this post."""
        return self._dropped.get(post_id, frozenset())

    def post_ids(self, discussion_id: int) -> list[int]:
        """Every post id of a discussion by number (event posts and hidden ones included)."""
        return [p.id for p in self._discussion_posts(discussion_id)]

    # --- scripting: auth and faults -------------------------------------------------------

    def revoke_api_key(self, *, as_guest: bool = False) -> None:
        """Revoke the key: answer 401 not_authenticated, or (as_guest) treat it as unknown."""
        # Flarum core itself ignores an unknown key and serves the request as a guest [AUTH];
        # `as_guest=True` imitates that, the default imitates an install that rejects it.
        self._revoked = "guest" if as_guest else "401"

    def restore_api_key(self) -> None:
        """Accept the key again."""
        self._revoked = None

    # --- visibility [VIS] -----------------------------------------------------------------

    def _can_view_forum(self, actor: int | None) -> bool:
        return self.public or actor is not None

    def is_moderator(self, actor: int | None) -> bool:
        """Whether the actor may see hidden content (Admins and Mods)."""
        user = self._users.get(actor) if actor is not None else None
        return user is not None and bool({ADMIN_GROUP, MOD_GROUP} & set(user.groups))

    def _can_see_discussion(self, discussion: _Discussion, actor: int | None) -> bool:
        if not self._can_view_forum(actor):
            return False
        if discussion.hidden_at is None:
            return True
        return self.is_moderator(actor) or (actor is not None and discussion.user_id == actor)

    def _can_see_post(self, post: _Post, actor: int | None) -> bool:
        discussion = self._discussions.get(post.discussion_id)
        if discussion is None or not self._can_see_discussion(discussion, actor):
            return False
        if post.hidden_at is None:
            return True
        return self.is_moderator(actor) or (actor is not None and post.user_id == actor)

    def _matches(self, post: _Post, filters: Mapping[str, Any]) -> bool:
        for name, value in filters.items():
            values = str(value).split(",")
            if name == "discussion" and str(post.discussion_id) != str(value):
                return False
            if name == "id" and str(post.id) not in values:
                return False
            if name == "type" and post.type != value:
                return False
            if name == "number" and str(post.number) != str(value):
                return False
            if name == "author":
                user = self._users.get(post.user_id) if post.user_id is not None else None
                if user is None or user.username not in values:
                    return False
        return True

    # --- derived discussion fields --------------------------------------------------------

    def visible_comments(self, discussion_id: int) -> list[_Post]:
        """Comments that count for commentCount/lastPostedAt (Discussion::comments())."""
        return [
            p
            for p in self._discussion_posts(discussion_id)
            if p.type == "comment" and p.hidden_at is None
        ]

    def _sort_value(self, discussion: _Discussion, name: str) -> Any:
        if name == "createdAt":
            return discussion.created_at
        comments = self.visible_comments(discussion.id)
        if name == "commentCount":
            return len(comments)
        return comments[-1].created_at if comments else discussion.created_at

    def _discussion_posts(self, discussion_id: int) -> list[_Post]:
        return sorted(
            (p for p in self._posts.values() if p.discussion_id == discussion_id),
            key=lambda p: p.number,
        )

    def visible_posts(self, discussion_id: int, actor: int | None) -> list[_Post]:
        """The posts of a discussion the actor may see, by number."""
        return [p for p in self._discussion_posts(discussion_id) if self._can_see_post(p, actor)]

    def user_record(self, user_id: int | None) -> _User | None:
        """A user, or None when deleted or absent."""
        return self._users.get(user_id) if user_id is not None else None

    def group_record(self, group_id: int) -> _Group:
        """A group by id."""
        return self._groups[group_id]

    def tag_record(self, tag_id: int) -> _Tag | None:
        """A tag by id."""
        return self._tags.get(tag_id)

    def post_record(self, post_id: int) -> _Post | None:
        """A post by id."""
        return self._posts.get(post_id)

    def discussion_record(self, discussion_id: int) -> _Discussion | None:
        """A discussion by id."""
        return self._discussions.get(discussion_id)

    # --- rendering [MENTION] --------------------------------------------------------------

    @property
    def forum_url(self) -> str:
        """The URL the forum believes it has: the server's, or `public_url`."""
        raise NotImplementedError

    def render(self, post: _Post) -> str:
        """contentHtml of a comment: paragraphs, escaped text and post mentions [MENTION]."""
        paragraphs = [part for part in re.split(r"\n\s*\n", str(post.content)) if part.strip()]
        return "".join(f"<p>{self._render_inline(part.strip())}</p>" for part in paragraphs)

    def _render_inline(self, text: str) -> str:
        out: list[str] = []
        position = 0
        for match in _MENTION_SOURCE.finditer(text):
            out.append(html.escape(text[position : match.start()], quote=False))
            target = self._posts.get(int(match["id"]))
            name = html.escape(match["name"], quote=False)
            if target is None:
                out.append(
                    f'<span class="PostMention PostMention--deleted" data-id="{match["id"]}">'
                    f"{name}</span>"
                )
            else:
                href = f"{self.forum_url}/d/{target.discussion_id}/{target.number}"
                out.append(f'<a href="{href}" class="PostMention" data-id="{target.id}">{name}</a>')
            position = match.end()
        out.append(html.escape(text[position:], quote=False).replace("\n", "<br>\n"))
        return "".join(out)

    # --- internals ------------------------------------------------------------------------

    def _add(
        self, discussion_id: int, author: int | None, created_at: datetime, kind: str, content: Any
    ) -> int:
        discussion = self._discussion(discussion_id)
        if author is not None and author not in self._users:
            raise KeyError(f"no user {author}")
        post_id = self._take_id("posts")
        self._posts[post_id] = _Post(
            id=post_id,
            discussion_id=discussion_id,
            number=discussion.next_number,
            user_id=author,
            created_at=created_at,
            type=kind,
            content=content,
        )
        discussion.next_number += 1
        return post_id

    def _display_name(self, user_id: int | None) -> str:
        user = self.user_record(user_id)
        return user.display_name if user is not None else "[deleted]"

    def _take_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] += 1
        return value

    def _discussion(self, discussion_id: int) -> _Discussion:
        return find(self._discussions, discussion_id, "discussion")

    def _post(self, post_id: int) -> _Post:
        return find(self._posts, post_id, "post")
