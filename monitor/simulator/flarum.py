"""A fake Flarum forum (JSON:API discussions, posts, users, errors) on a real aiohttp server.

Payloads are imitated from Flarum's own code, not from our reading of the docs. Sources, cited
by tag next to the code that imitates them (paths in flarum/framework unless said otherwise):
[SER-POST]  framework/core/src/Api/Serializer/BasicPostSerializer.php and PostSerializer.php:
            number, createdAt, contentType; comments carry contentHtml + renderFailed, `content`
            only when the actor can edit; event posts carry `content`; editedAt; isHidden +
            hiddenAt only when hidden; canEdit, canDelete, canHide.
[SER-DISC]  .../Serializer/BasicDiscussionSerializer.php and DiscussionSerializer.php: title,
            slug, commentCount, participantCount, createdAt, lastPostedAt, lastPostNumber,
            canReply, canRename, canDelete, canHide, isHidden/hiddenAt.
[SER-USER]  .../Serializer/BasicUserSerializer.php and UserSerializer.php: username,
            displayName, avatarUrl, slug, joinTime, discussionCount, commentCount, can*; `email`
            only for the user themselves or an actor who can edit credentials.
[SER-GROUP] .../Serializer/GroupSerializer.php: nameSingular, namePlural, color, icon, isHidden.
[DATE]      .../Serializer/AbstractSerializer.php formatDate: DateTime::RFC3339
            ("2022-01-01T10:20:30+00:00").
[LIST-DISC] .../Api/Controller/ListDiscussionsController.php: default include user,
            lastPostedUser, mostRelevantPost(.user); optional firstPost, lastPost; default sort
            lastPostedAt desc; sort fields lastPostedAt, commentCount, createdAt.
[LIST-POST] .../Api/Controller/ListPostsController.php: include user, user.groups, editedUser,
            hiddenUser, discussion; sort fields number, createdAt.
[SHOW-DISC] .../Api/Controller/ShowDiscussionController.php: the `posts` relationship lists the
            ids of ALL posts the actor may see (by number); only page[offset]/page[limit] of
            them are serialized into `included`.
[LIMIT]     flarum/docs docs/extend/api.md: `$limit = 20` by default, `$maxLimit = 50`.
[PAGE]      Both list controllers call tobscure/json-api Document::addPaginationLinks with
            total = null while there are more results: `first` always, `prev` when offset > 0,
            `next` only when more results exist; page[offset] is left out when 0, page[limit]
            is kept only when the request gave it; PHP http_build_query encodes the brackets.
[DOCS]      flarum/docs docs/rest-api.md: example list response ("links": {"first":
            "https://flarum.tld/api/discussions", "next": ".../api/discussions?page%5Boffset
            %5D=20"}, slug "234-lorem-ipsum"), `Authorization: Token KEY; userId=1`, and the
            JSON:API error bodies.
[ERR]       framework/core/src/Foundation/ErrorServiceProvider.php (not_authenticated 401,
            permission_denied 403, not_found 404, invalid_parameter 400, too_many_requests 429)
            and ErrorHandling/JsonApiFormatter.php ({"errors": [{"status": "404", "code":
            "not_found"}]}); Http/Exception/RouteNotFoundException.php: `route_not_found`.
[FLOOD]     Post/Exception/FloodingException.php + Api/Middleware/ThrottleApi.php: Flarum's own
            429 is `too_many_requests` without a Retry-After header (proxies in front add one).
[MAINT]     framework/core/src/Http/Middleware/CheckForMaintenanceMode.php throws
            MaintenanceModeException -> `maintenance` 503 (ErrorServiceProvider), no Retry-After;
            a proxy in front adds one, in seconds or as an HTTP-date (RFC 9110 section 10.2.3).
[FAIL]      One discussion failing on every read: 403 permission_denied from a policy or an
            extension's assertCan during the request (e.g. flarum/framework#1987),
            400 invalid_parameter [ERR], 404 not_found, or 500 `unknown` (HandledError::unknown,
            framework/core/src/Foundation/ErrorHandling/HandledError.php) for an exception no
            handler knows, e.g. a serializer choking on one post.
[BROKEN]    A post without createdAt, number or contentType, without its `id`, comes from no
            Flarum version we know of; it stands for an extension or a proxy that rewrites the
            document. A post without its `user` relationship is what Flarum sends when the author
            was deleted (AbstractSerializer leaves a null relationship out) [SER-POST].
[AUTH]      framework/core/src/Http/Middleware/AuthenticateWithHeader.php: `Token KEY; userId=N`;
            an unknown key is silently ignored and the request runs as a guest (still open:
            flarum/framework#253).
[VIS]       Discussion/Access/ScopeDiscussionVisibility.php, Post/Access/ScopePostVisibility.php
            (hidden posts/discussions only for moderators and their authors; nothing at all
            without viewForum) and tests/integration/api/posts/ListTest.php
            (guests_cant_see_anything_if_not_allowed: HTTP 200 with empty data; filters
            discussion, id, type, number, author).
[MENTION]   extensions/mentions/src/ConfigureMentions.php: source `@"Name"#p123`, rendered
            `<a href="{DISCUSSION_URL}{discussionid}/{number}" class="PostMention"
            data-id="123">Name</a>`, or `<span class="PostMention PostMention--deleted" ...>`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple
from urllib.parse import quote_plus

import orjson
from aiohttp import web

from monitor.simulator import base
from monitor.simulator.base import (
    Delay,
    Disconnect,
    FakeServer,
    MalformedJson,
    Throttle,
    TruncatedBody,
    find,
    json_response,
)

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "GUEST_GROUP",
    "MEMBER_GROUP",
    "MOD_GROUP",
    "Delay",
    "Disconnect",
    "FakeFlarum",
    "Fault",
    "FlarumError",
    "HttpStatus",
    "MalformedJson",
    "RecordedRequest",
    "Throttle",
    "TruncatedBody",
]

# Flarum's built-in groups (Flarum\Group\Group::ADMINISTRATOR_ID etc.) and the install's admin.
ADMIN_GROUP, GUEST_GROUP, MEMBER_GROUP, MOD_GROUP = 1, 2, 3, 4
ADMIN_USER = 1
DEFAULT_LIMIT, MAX_LIMIT = 20, 50  # [LIMIT]
JSON_API = "application/vnd.api+json"
_MENTION_SOURCE = re.compile(r'@"(?P<name>[^"]*)"#p(?P<id>\d+)')
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


# --- faults -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FlarumError:
    """Answer with a JSON:API error body [ERR], e.g. 429 too_many_requests [FLOOD]."""

    status: int
    code: str
    detail: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class HttpStatus(base.HttpStatus):
    """A plain, non-JSON:API answer of the proxy in front: by default its 502."""

    status: int = 502
    body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>"


Fault = FlarumError | HttpStatus | Throttle | Delay | MalformedJson | TruncatedBody | Disconnect
# What a post can be served without [BROKEN]: attributes, the `user` relationship, its id.
PostField = Literal["createdAt", "number", "contentType", "user", "id"]


class RecordedRequest(NamedTuple):
    """One request the fake received: path, query and whether it carried an Authorization."""

    path: str
    query: dict[str, str]
    authorized: bool


# --- the forum's data ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Group:
    id: int
    singular: str
    plural: str
    color: str | None = None
    icon: str | None = None


@dataclass(kw_only=True)
class _User:
    id: int
    username: str
    display_name: str
    groups: tuple[int, ...]
    joined_at: datetime


@dataclass(kw_only=True)
class _Tag:
    id: int
    name: str
    slug: str


@dataclass(kw_only=True)
class _Discussion:
    id: int
    title: str
    user_id: int | None
    created_at: datetime
    tag_ids: tuple[int, ...]
    hidden_at: datetime | None = None
    next_number: int = 1


@dataclass(kw_only=True)
class _Post:
    id: int
    discussion_id: int
    number: int
    user_id: int | None
    created_at: datetime
    type: str  # "comment" or an event type such as "discussionRenamed"
    content: Any  # comments: the source text; event posts: their JSON content
    edited_at: datetime | None = None
    hidden_at: datetime | None = None


class _ApiFailure(Exception):
    """Raised inside request handling to answer with a JSON:API error."""

    def __init__(self, status: int, code: str, detail: str | None = None) -> None:
        super().__init__(code)
        self.error = FlarumError(status=status, code=code, detail=detail)


# What each endpoint accepts in `include` (anything else is invalid_parameter, as in Flarum).
_LIST_DISCUSSION_INCLUDES = frozenset(
    {"user", "lastPostedUser", "mostRelevantPost", "mostRelevantPost.user", "firstPost"}
    | {"lastPost", "tags"}
)
_LIST_DISCUSSION_DEFAULT = ("user", "lastPostedUser", "mostRelevantPost", "mostRelevantPost.user")
_SHOW_DISCUSSION_INCLUDES = frozenset(
    {"user", "posts", "posts.discussion", "posts.user", "posts.user.groups", "posts.editedUser"}
    | {"posts.hiddenUser", "lastPostedUser", "firstPost", "lastPost", "tags"}
)
_SHOW_DISCUSSION_DEFAULT = (
    "user",
    "posts",
    "posts.discussion",
    "posts.user",
    "posts.user.groups",
    "posts.editedUser",
    "posts.hiddenUser",
)
_POST_INCLUDES = frozenset({"user", "user.groups", "editedUser", "hiddenUser", "discussion"})
_POST_DEFAULT = ("user", "user.groups", "editedUser", "hiddenUser", "discussion")
_USER_INCLUDES = frozenset({"groups"})


class FakeFlarum(FakeServer[Fault]):
    """A scriptable fake Flarum forum served over real HTTP.

    Use `await start()` / `await stop()` and `base_url` (the forum root; the API is under
    `/api`). `public_url` is the forum URL Flarum believes it has (its config.php `url`), used
    in pagination links and mentions; by default the address the fake listens on.
    """

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
        self._groups: dict[int, _Group] = {
            ADMIN_GROUP: _Group(id=ADMIN_GROUP, singular="Admin", plural="Admins",
                                color="#B72A2A", icon="fas fa-wrench"),
            GUEST_GROUP: _Group(id=GUEST_GROUP, singular="Guest", plural="Guests"),
            MEMBER_GROUP: _Group(id=MEMBER_GROUP, singular="Member", plural="Members"),
            MOD_GROUP: _Group(id=MOD_GROUP, singular="Mod", plural="Mods",
                              color="#80349E", icon="fas fa-bolt"),
        }  # fmt: skip
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
        """Answer every read of this discussion (show, and its posts list) with `status` [FAIL].

        The discussion list still shows it, as Flarum would for an error raised while
        serializing or authorizing that one discussion.
        """
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
        """Revoke the key: answer 401 not_authenticated, or (as_guest) treat it as unknown.

        Flarum core itself ignores an unknown key and serves the request as a guest [AUTH];
        `as_guest=True` imitates that, the default imitates an install that rejects it.
        """
        self._revoked = "guest" if as_guest else "401"

    def restore_api_key(self) -> None:
        """Accept the key again."""
        self._revoked = None

    # --- server lifecycle -----------------------------------------------------------------

    def _routes(self, router: web.UrlDispatcher) -> None:
        """The API's read endpoints; any other path is answered route_not_found."""
        router.add_get("/api/discussions", self._handle)
        router.add_get("/api/discussions/{id}", self._handle)
        router.add_get("/api/posts", self._handle)
        router.add_get("/api/users/{id}", self._handle)
        router.add_route("*", "/{tail:.*}", self._handle)

    @property
    def forum_url(self) -> str:
        """The URL the forum believes it has (links and mentions are built on it)."""
        return self.public_url or self.base_url

    # --- request handling -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(request.path, dict(request.query), "Authorization" in request.headers)
        )
        with self._counted():
            return await self._serve(request)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        response = await self._faulted(request)
        if response is not None:
            return response
        try:
            actor = self._actor(request)
            body = self._route(request, actor)
        except _ApiFailure as failure:
            return self._error_response(failure.error)
        return self._json_response(body)

    def _route(self, request: web.Request, actor: int | None) -> dict[str, Any]:
        route = request.match_info.route.resource
        canonical = route.canonical if route is not None else ""
        if request.method != "GET":
            raise _ApiFailure(405, "method_not_allowed")  # this fake serves reads only
        query = _nested_query(request.query)
        if canonical == "/api/discussions":
            return self._list_discussions(query, actor)
        if canonical == "/api/discussions/{id}":
            return self._show_discussion(request.match_info["id"], query, actor)
        if canonical == "/api/posts":
            return self._list_posts(query, actor)
        if canonical == "/api/users/{id}":
            return self._show_user(request.match_info["id"], query, actor)
        raise _ApiFailure(404, "route_not_found")  # [ERR]

    def _actor(self, request: web.Request) -> int | None:
        """The user the request acts as, or None for a guest [AUTH]."""
        parts = request.headers.get("Authorization", "").split(";")
        if not parts[0].startswith("Token "):
            return None
        key = parts[0][len("Token ") :]
        if self.api_key is None or key != self.api_key or self._revoked == "guest":
            return None  # unknown keys are ignored, not rejected [AUTH]
        if self._revoked == "401":
            raise _ApiFailure(401, "not_authenticated")
        if self.key_user_id is not None:
            return self.key_user_id
        name, _, value = (parts[1] if len(parts) > 1 else "").strip().partition("=")
        if name == "userId" and value.strip().isdigit() and int(value) in self._users:
            return int(value)
        return None

    # --- endpoints ------------------------------------------------------------------------

    def _list_discussions(self, query: dict[str, Any], actor: int | None) -> dict[str, Any]:
        """GET /api/discussions [LIST-DISC]."""
        includes = _includes(query, _LIST_DISCUSSION_INCLUDES, _LIST_DISCUSSION_DEFAULT)
        field_name, descending = _sort(query, ("lastPostedAt", "commentCount", "createdAt"))
        limit, offset = _page(query)
        filters = query.get("filter")
        candidates = [d for d in self._discussions.values() if self._can_see_discussion(d, actor)]
        tag_filter = filters.get("tag") if isinstance(filters, dict) else None
        if isinstance(tag_filter, str) and tag_filter:
            # flarum/tags: comma-separated slugs, any of them matches.
            slugs = set(tag_filter.strip('"').split(","))
            wanted = {t.id for t in self._tags.values() if t.slug in slugs}
            candidates = [d for d in candidates if wanted & set(d.tag_ids)]
        if field_name is None:
            field_name, descending = "lastPostedAt", True
        candidates.sort(key=lambda d: (self._sort_value(d, field_name), d.id), reverse=descending)
        page = candidates[offset : offset + limit]
        doc = _Document(self, actor)
        data = [doc.discussion(d, includes) for d in page]
        more = offset + limit < len(candidates)
        return doc.finish(data, links=self._links("/api/discussions", query, offset, limit, more))

    def _show_discussion(
        self, raw_id: str, query: dict[str, Any], actor: int | None
    ) -> dict[str, Any]:
        """GET /api/discussions/{id} [SHOW-DISC]."""
        includes = _includes(query, _SHOW_DISCUSSION_INCLUDES, _SHOW_DISCUSSION_DEFAULT)
        limit, offset = _page(query)
        discussion = self._discussions.get(int(raw_id)) if raw_id.isdigit() else None
        if discussion is None or not self._can_see_discussion(discussion, actor):
            raise _ApiFailure(404, "not_found")
        self._fail_if_failing(discussion.id)
        doc = _Document(self, actor)
        data = doc.discussion(discussion, includes, posts_window=(offset, limit))
        return doc.finish(data)

    def _list_posts(self, query: dict[str, Any], actor: int | None) -> dict[str, Any]:
        """GET /api/posts [LIST-POST] with the filters of [VIS]'s ListTest."""
        includes = _includes(query, _POST_INCLUDES, _POST_DEFAULT)
        field_name, descending = _sort(query, ("number", "createdAt"))
        limit, offset = _page(query)
        filters = query.get("filter")
        posts = [p for p in self._posts.values() if self._can_see_post(p, actor)]
        if isinstance(filters, dict):
            posts = [p for p in posts if self._matches(p, filters)]
            wanted = filters.get("discussion")
            if isinstance(wanted, str) and wanted.isdigit():
                self._fail_if_failing(int(wanted))
        if field_name is None:
            posts.sort(key=lambda p: p.id)
        else:
            posts.sort(
                key=lambda p: (p.number if field_name == "number" else p.created_at, p.id),
                reverse=descending,
            )
        page = posts[offset : offset + limit]
        doc = _Document(self, actor)
        data = [doc.post(p, includes) for p in page]
        more = offset + limit < len(posts)
        return doc.finish(data, links=self._links("/api/posts", query, offset, limit, more))

    def _fail_if_failing(self, discussion_id: int) -> None:
        """[FAIL]: the JSON:API error of a discussion set to fail."""
        status = self._failing.get(discussion_id)
        if status is not None:
            raise _ApiFailure(status, _FAILURE_CODES[status])

    def _show_user(self, raw_id: str, query: dict[str, Any], actor: int | None) -> dict[str, Any]:
        """GET /api/users/{id}: UserSerializer [SER-USER]."""
        includes = _includes(query, _USER_INCLUDES, ("groups",))
        user = self._users.get(int(raw_id)) if raw_id.isdigit() else None
        if user is None or not self._can_view_forum(actor):
            raise _ApiFailure(404, "not_found")
        doc = _Document(self, actor)
        return doc.finish(doc.user(user, "groups" in includes))

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

    # --- links [PAGE] ---------------------------------------------------------------------

    def _links(
        self, path: str, query: dict[str, Any], offset: int, limit: int, more: bool
    ) -> dict[str, str]:
        url = f"{self.forum_url}{path}"
        links = {"first": _page_link(url, query, 0, limit)}
        if offset > 0:
            links["prev"] = _page_link(url, query, max(0, offset - limit), limit)
        if more:
            links["next"] = _page_link(url, query, offset + limit, limit)
        return links

    # --- faults, delays and responses -----------------------------------------------------

    async def _platform_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """Flarum's JSON:API errors and throttles, or a PHP notice before the JSON."""
        if isinstance(fault, FlarumError):
            return self._error_response(fault)
        if isinstance(fault, Throttle):
            # [FLOOD] ThrottleApi's 429, [MAINT] the maintenance 503; Retry-After from a proxy.
            code = "too_many_requests" if fault.status == 429 else "maintenance"
            headers = fault.headers(self._now())
            return self._error_response(
                FlarumError(status=fault.status, code=code, headers=headers)
            )
        # A PHP notice printed before the JSON, as a misconfigured extension can cause.
        raw = b'<br />\n<b>Deprecated</b>: ...<br />\n{"data": []}'
        return web.Response(body=raw, content_type=JSON_API)

    def _truncated_sample(self, request: web.Request) -> tuple[bytes, str]:
        """A page of posts to cut in half."""
        full = orjson.dumps({"data": [{"type": "posts", "id": "1", "attributes": {}}] * 20})
        return full, JSON_API

    def _error_response(self, error: FlarumError) -> web.Response:
        entry: dict[str, str] = {"status": str(error.status), "code": error.code}  # [ERR]
        if error.detail is not None:
            entry["detail"] = error.detail
        return json_response(
            orjson.dumps({"errors": [entry]}),
            status=error.status,
            content_type=JSON_API,
            headers=error.headers,
        )

    def _json_response(self, body: Mapping[str, Any]) -> web.Response:
        return json_response(orjson.dumps(body), content_type=JSON_API)

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


class _Document:
    """One JSON:API document being built: primary data plus deduplicated `included`."""

    def __init__(self, forum: FakeFlarum, actor: int | None) -> None:
        self._forum = forum
        self._actor = actor
        self._included: dict[tuple[str, str], dict[str, Any]] = {}

    def finish(self, data: Any, *, links: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The document: links, data, included (tobscure's member order)."""
        document: dict[str, Any] = {}
        if links:
            document["links"] = dict(links)
        document["data"] = data
        primary = {(d["type"], d["id"]) for d in (data if isinstance(data, list) else [data])}
        included = [v for k, v in self._included.items() if k not in primary]
        if included:
            document["included"] = included
        for resource in [*(data if isinstance(data, list) else [data]), *included]:
            if resource["type"] == "posts" and "id" in self._forum.dropped_fields(
                int(resource["id"])
            ):
                del resource["id"]  # [BROKEN]
        return document

    def _include(self, resource: dict[str, Any]) -> dict[str, str]:
        key = (resource["type"], resource["id"])
        known = self._included.setdefault(key, resource)
        if known is not resource and "relationships" in resource:
            # One resource reached by two include paths carries the union of relationships.
            known.setdefault("relationships", {}).update(resource["relationships"])
        return {"type": resource["type"], "id": resource["id"]}

    def discussion(
        self,
        discussion: _Discussion,
        includes: frozenset[str],
        posts_window: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """A discussion resource [SER-DISC] with the requested relationships."""
        forum, actor = self._forum, self._actor
        comments = forum.visible_comments(discussion.id)
        last = comments[-1] if comments else None
        moderator = forum.is_moderator(actor)
        attributes: dict[str, Any] = {
            "title": discussion.title,
            # IdWithTransliteratedSlugDriver: "234-lorem-ipsum" [DOCS].
            "slug": f"{discussion.id}-{_slugify(discussion.title)}".rstrip("-"),
            "commentCount": len(comments),
            "participantCount": len({p.user_id for p in comments if p.user_id is not None}),
            "createdAt": _date(discussion.created_at),
            "lastPostedAt": _date(last.created_at if last else discussion.created_at),
            "lastPostNumber": last.number if last else 1,
            "canReply": actor is not None,
            "canRename": moderator,
            "canDelete": actor == ADMIN_USER,
            "canHide": moderator,
        }
        if discussion.hidden_at is not None:
            attributes["isHidden"] = True
            attributes["hiddenAt"] = _date(discussion.hidden_at)
        # Extension attributes of a stock install ([DOCS] example): tags, lock, sticky.
        attributes.update(
            {"canTag": moderator, "isLocked": False, "canLock": moderator, "isSticky": False}
        )
        relationships: dict[str, Any] = {}
        if "user" in includes:
            self._user_relation(relationships, "user", discussion.user_id, with_groups=False)
        if "lastPostedUser" in includes and last is not None:
            self._user_relation(relationships, "lastPostedUser", last.user_id, with_groups=False)
        if "tags" in includes:
            tags = [forum.tag_record(t) for t in discussion.tag_ids]
            relationships["tags"] = {
                "data": [self._include(_tag(t)) for t in tags if t is not None]
            }
        if "firstPost" in includes and comments:
            first = forum.visible_posts(discussion.id, actor)[0]
            relationships["firstPost"] = {"data": self._include(self._basic_post(first))}
        if "lastPost" in includes and last is not None:
            relationships["lastPost"] = {"data": self._include(self._basic_post(last))}
        if "posts" in includes and posts_window is not None:
            visible = forum.visible_posts(discussion.id, actor)
            offset, limit = posts_window
            post_includes = frozenset(
                name.removeprefix("posts.") for name in includes if name.startswith("posts.")
            )
            for post in visible[offset : offset + limit]:
                self._include(self.post(post, post_includes))
            relationships["posts"] = {"data": [{"type": "posts", "id": str(p.id)} for p in visible]}
        resource: dict[str, Any] = {
            "type": "discussions",
            "id": str(discussion.id),
            "attributes": attributes,
        }
        if relationships:
            resource["relationships"] = relationships
        return resource

    def _basic_post(self, post: _Post) -> dict[str, Any]:
        """BasicPostSerializer: number, createdAt, contentType, contentHtml [SER-POST]."""
        attributes: dict[str, Any] = {
            "number": post.number,
            "createdAt": _date(post.created_at),
            "contentType": post.type,
        }
        if post.type == "comment":
            attributes["contentHtml"] = self._forum.render(post)
            attributes["renderFailed"] = False
        else:
            attributes["content"] = post.content
        return {"type": "posts", "id": str(post.id), "attributes": attributes}

    def post(self, post: _Post, includes: frozenset[str]) -> dict[str, Any]:
        """A post resource (PostSerializer) [SER-POST]."""
        forum, actor = self._forum, self._actor
        resource = self._basic_post(post)
        attributes = resource["attributes"]
        moderator = forum.is_moderator(actor)
        can_edit = post.type == "comment" and (
            moderator or (actor is not None and actor == post.user_id)
        )
        if post.type == "comment":
            if can_edit:
                attributes["content"] = post.content
            if actor == ADMIN_USER:
                attributes["ipAddress"] = "127.0.0.1"
        if post.edited_at is not None:
            attributes["editedAt"] = _date(post.edited_at)
        if post.hidden_at is not None:
            attributes["isHidden"] = True
            attributes["hiddenAt"] = _date(post.hidden_at)
        attributes.update({"canEdit": can_edit, "canDelete": moderator, "canHide": moderator})
        relationships: dict[str, Any] = {}
        if "user" in includes:
            self._user_relation(
                relationships, "user", post.user_id, with_groups="user.groups" in includes
            )
        if "discussion" in includes:
            relationships["discussion"] = {
                "data": {"type": "discussions", "id": str(post.discussion_id)}
            }
            discussion = forum.discussion_record(post.discussion_id)
            if discussion is not None:
                self._include(_basic_discussion(discussion))
        dropped = forum.dropped_fields(post.id)
        for name in dropped & set(attributes):
            del attributes[name]  # [BROKEN]
        if "user" in dropped:
            relationships.pop("user", None)  # as for a deleted author [SER-POST]
        if relationships:
            resource["relationships"] = relationships
        return resource

    def _user_relation(
        self, relationships: dict[str, Any], name: str, user_id: int | None, *, with_groups: bool
    ) -> None:
        # A null relationship is left out entirely (AbstractSerializer::buildRelationship).
        user = self._forum.user_record(user_id)
        if user is not None:
            relationships[name] = {"data": self._include(self.user(user, with_groups))}

    def user(self, user: _User, with_groups: bool) -> dict[str, Any]:
        """A user resource (UserSerializer) [SER-USER]."""
        forum, actor = self._forum, self._actor
        acting = forum.user_record(actor)
        admin = acting is not None and ADMIN_GROUP in acting.groups
        attributes: dict[str, Any] = {
            "username": user.username,
            "displayName": user.display_name,
            "avatarUrl": None,
            "slug": user.username,
            "joinTime": _date(user.joined_at),
            "discussionCount": 0,
            "commentCount": 0,
            "canEdit": admin,
            "canEditCredentials": admin,
            "canEditGroups": admin,
            "canDelete": admin,
        }
        if admin or actor == user.id:
            attributes["isEmailConfirmed"] = True
            attributes["email"] = f"{user.username}@example.org"
        resource: dict[str, Any] = {"type": "users", "id": str(user.id), "attributes": attributes}
        if with_groups:
            groups = [forum.group_record(g) for g in user.groups]
            resource["relationships"] = {
                "groups": {"data": [self._include(_group(g)) for g in groups]}
            }
        return resource


# [FAIL]: the JSON:API error code Flarum gives each status (ErrorServiceProvider, HandledError).
_FAILURE_CODES = {
    400: "invalid_parameter",
    403: "permission_denied",
    404: "not_found",
    500: "unknown",
}


# --- helpers ------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment


def _date(moment: datetime) -> str:
    """DateTime::RFC3339 in UTC, as Flarum stores and formats dates [DATE]."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _slugify(title: str) -> str:
    return _NOT_SLUG.sub("-", title.lower()).strip("-")


def _group(group: _Group) -> dict[str, Any]:
    """GroupSerializer [SER-GROUP]."""
    return {
        "type": "groups",
        "id": str(group.id),
        "attributes": {
            "nameSingular": group.singular,
            "namePlural": group.plural,
            "color": group.color,
            "icon": group.icon,
            "isHidden": False,
        },
    }


def _tag(tag: _Tag) -> dict[str, Any]:
    return {
        "type": "tags",
        "id": str(tag.id),
        "attributes": {"name": tag.name, "slug": tag.slug, "color": "#888", "isHidden": False},
    }


def _basic_discussion(discussion: _Discussion) -> dict[str, Any]:
    """BasicDiscussionSerializer: title and slug only [SER-DISC]."""
    return {
        "type": "discussions",
        "id": str(discussion.id),
        "attributes": {
            "title": discussion.title,
            "slug": f"{discussion.id}-{_slugify(discussion.title)}".rstrip("-"),
        },
    }


def _nested_query(query: Mapping[str, str]) -> dict[str, Any]:
    """`page[limit]=5&filter[tag]=a` as PHP parses it: {"page": {"limit": "5"}, ...}."""
    nested: dict[str, Any] = {}
    for key, value in query.items():
        name, bracket, rest = key.partition("[")
        if bracket and rest.endswith("]"):
            inner = nested.setdefault(name, {})
            if isinstance(inner, dict):
                inner[rest[:-1]] = value
        else:
            nested[key] = value
    return nested


def _includes(
    query: Mapping[str, Any], available: frozenset[str], default: Iterable[str]
) -> frozenset[str]:
    raw = query.get("include")
    if not isinstance(raw, str) or not raw:
        return frozenset(default)
    wanted = raw.split(",")
    invalid = [name for name in wanted if name not in available]
    if invalid:
        raise _ApiFailure(400, "invalid_parameter", f"Invalid includes [{','.join(invalid)}]")
    return frozenset(wanted)


def _sort(query: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[str | None, bool]:
    raw = query.get("sort")
    if not isinstance(raw, str) or not raw:
        return None, False
    name = raw.removeprefix("-")
    if name not in fields:
        raise _ApiFailure(400, "invalid_parameter", f"Invalid sort field [{name}]")
    return name, raw.startswith("-")


def _page(query: Mapping[str, Any]) -> tuple[int, int]:
    raw = query.get("page")
    page: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    try:
        offset = int(page.get("offset") or 0)
        limit = int(page.get("limit") or 0)
    except ValueError as err:
        raise _ApiFailure(400, "invalid_parameter") from err
    if offset < 0:
        raise _ApiFailure(400, "invalid_parameter", "page[offset] must be >=0")
    limit = min(limit, MAX_LIMIT) if limit > 0 else DEFAULT_LIMIT  # [LIMIT]
    return limit, offset


def _page_link(url: str, query: Mapping[str, Any], offset: int, limit: int) -> str:
    """tobscure's addPaginationLink + PHP http_build_query [PAGE]."""
    params: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in query.items()}
    page = params.setdefault("page", {})
    if not isinstance(page, dict):
        page = params["page"] = {}
    page.pop("number", None)
    page.pop("size", None)
    if offset:
        page["offset"] = str(offset)
    else:
        page.pop("offset", None)
    if "limit" in page:
        page["limit"] = str(limit)
    if not page:
        del params["page"]
    pairs: list[str] = []
    for key, value in params.items():
        if isinstance(value, dict):
            for inner, item in value.items():
                pairs.append(f"{quote_plus(f'{key}[{inner}]')}={quote_plus(str(item))}")
        else:
            pairs.append(f"{quote_plus(key)}={quote_plus(str(value))}")
    return url + ("?" + "&".join(pairs) if pairs else "")
