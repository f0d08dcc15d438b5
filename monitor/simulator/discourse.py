"""A fake Discourse forum (topic lists, topics, posts, errors, rate limits) over real HTTP.

Wire formats are imitated from Discourse's own serializers, API schemas and captured responses,
cited by tag next to the code that imitates them:
[LIST]  discourse/discourse spec/requests/api/schemas/json/category_topics_response.json: a topic
        list is {"users", "primary_groups", "topic_list": {"can_create_topic", "per_page",
        "topics": [{id, title, fancy_title, slug, posts_count, reply_count, highest_post_number,
        created_at, last_posted_at, bumped, bumped_at, pinned, visible, closed, archived,
        last_poster_username, category_id, pinned_globally, posters: [...]}, ...]}}.
[MORE]  app/controllers/list_controller.rb `construct_url_with`: `more_topics_url` is a path
        with ".json" taken out (`url.sub('.json?', '?')`), `page` 0-based (`params[:page] + 1`);
        /latest adds `no_definitions=true`. app/serializers/topic_list_serializer.rb: the field
        is only sent when the page is full (`topics.size == per_page`).
[PIN]   lib/topic_query.rb `prioritize_pinned_topics`: pinned topics lead the first page only.
[SHOW]  spec/requests/api/schemas/json/topic_show_response.json: /t/{id}.json with
        `post_stream.posts` (one chunk) and `post_stream.stream` (every post id), plus topic
        fields (id, title, slug, posts_count, highest_post_number, deleted_at, has_deleted...).
[POST]  app/serializers/post_serializer.rb and basic_post_serializer.rb: id, name, username,
        created_at, cooked, post_number, post_type, updated_at, reply_to_post_number, topic_id,
        display_username, primary_group_name, version, moderator, admin, staff, user_id, hidden,
        hidden_reason_id (only when hidden), deleted_at, user_deleted, action_code (small actions).
[VIEW]  lib/topic_view.rb: chunk_size 20; `filter_post_types` shows whispers to staff only;
        staff do not get deleted posts in the stream unless `show_deleted` (post 1 excepted) and
        see `has_deleted`; `filter_posts_by_ids` does return deleted posts to staff.
[POSTS] app/controllers/topics_controller.rb#posts: /t/{id}/posts.json?post_ids[]=... answers
        TopicViewPostsSerializer, {"post_stream": {"posts": [...]}, "id": topic_id}.
[TIME]  "created_at": "2024-01-05T21:13:04.916Z" (milliseconds, Z) throughout the schemas' examples.
[AUTH]  lib/auth/default_current_user_provider.rb: an unknown or revoked key, or an Api-Username
        the key does not belong to, raises InvalidAccess(I18n.t('invalid_api_credentials')):
        403 {"errors": ["You are not permitted to view the requested resource. The API username
        or key is invalid."], "error_type": "invalid_access"} (the text as in
        discourse/wp-discourse's test fixtures); admin keys are limited per key per minute
        (`admin_api_min_#{api_key}`, GlobalSetting.max_admin_api_reqs_per_key_per_minute = 60).
[403]   a topic the user may not see: TopicView#check_and_raise_exceptions raises InvalidAccess;
        403 {"errors": ["You are not permitted to view the requested resource."],
        "error_type": "invalid_access"}.
[LOGIN] login_required sites answer anonymous JSON requests 403 "not_logged_in".
[404]   {"errors": ["The requested URL or resource could not be found."], "error_type":
        "not_found"}: discourse/discourse's own frontend test stubs and a captured
        forum.freecodecamp.org response.
[429]   {"errors": ["You’ve performed this action too many times. Please wait 39 seconds before
        trying again."], "error_type": "rate_limit", "extras": {"wait_seconds": 39,
        "time_left": "39 seconds"}}: n8n-io/n8n#24074, exercism/website#5346 and #5358; the
        Retry-After header on it: discourse/discourse#5659 (pydiscourse/pydiscourse#13).
        app/controllers/application_controller.rb `rescue_from RateLimiter::LimitExceeded`
        (discourse/discourse at 8cafdaf): Retry-After is `available_in` in seconds, the same
        number as `extras.wait_seconds`, plus Discourse-Rate-Limit-Error-Code when known.
[DATE]  Retry-After as an HTTP-date (RFC 9110 section 10.2.3 allows either form): what an API
        gateway in front of the forum may send instead (e.g. WSO2's ThrottleHandler,
        wso2/docs-apim#11858); Discourse itself always sends seconds.
[TOPIC] application_controller.rb `rescue_discourse_actions`: for topics#show the JSON error
        of a 403 (Discourse::InvalidAccess, "invalid_access") or 404 ("not_found") also carries
        `extras: {title, html, group}`; `rescue_from Discourse::InvalidParameters` answers 400
        "invalid_parameters" ("You supplied invalid parameters to the request: ...").
[500]   An exception no controller rescues ends in lib/middleware/discourse_public_exceptions.rb,
        whose `super` is Rails' ActionDispatch::PublicExceptions: a JSON request gets
        {"status": 500, "error": "Internal Server Error"}. One topic can do that on every read:
        discourse/discourse-translator#236 (NoMethodError in post_stream_serializer_mixin.rb for
        a post whose user was deleted).
[ORPHAN] Posts whose author was deleted have no user: `user_id`, `username`, `name` are null
        (discourse/discourse#4100 "displaying posts by deleted users", #28992).
[BROKEN] A post without `created_at` or `post_number` (keys absent) comes from no Discourse
        version we know of; it stands for a plugin serializer or a proxy that rewrites the
        stream, so the client's "one bad object never stops the source" can be tested.
[IP429] lib/middleware/request_tracker.rb, text/plain "Slow down, too many requests from this IP
        address." then "Please retry again in N seconds." and "Error code: ip_10_secs_limit.",
        with Retry-After and Discourse-Rate-Limit-Error-Code headers: discourse/discourse#11736,
        #15487, #25264, pi-hole/pi-hole#6659, pydiscourse/pydiscourse#68.
[NGINX] nginx's own HTML 429 page (no Retry-After) in front of Discourse: exercism/website#7104.
[WITHDRAWN] PostDestroyer#mark_for_deletion: an author deleting their own post leaves it in place
        with `user_deleted: true` and the text "(post withdrawn by author, will be automatically
        deleted in 24 hours unless flagged)".
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal, NamedTuple

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from monitor.clock import Clock, SystemClock
from monitor.simulator import base
from monitor.simulator.base import Delay, Disconnect, HttpStatus, MalformedJson, TruncatedBody

__all__ = [
    "MODERATOR_ACTION",
    "REGULAR",
    "SMALL_ACTION",
    "WHISPER",
    "Delay",
    "Disconnect",
    "DiscourseError",
    "FakeDiscourse",
    "Fault",
    "HttpStatus",
    "IpRateLimit",
    "MalformedJson",
    "NginxRateLimit",
    "RateLimit",
    "RecordedRequest",
    "TruncatedBody",
]

# Post types (Post.types in app/models/post.rb).
REGULAR, MODERATOR_ACTION, SMALL_ACTION, WHISPER = 1, 2, 3, 4
CHUNK_SIZE = 20  # [VIEW] TopicView.chunk_size
TOPICS_PER_PAGE = 30  # SiteSetting.topics_per_page default
SYSTEM_USER_ID = -1
INVALID_CREDENTIALS = (
    "You are not permitted to view the requested resource. The API username or key is invalid."
)
INVALID_ACCESS = "You are not permitted to view the requested resource."
NOT_FOUND = "The requested URL or resource could not be found."
NOT_LOGGED_IN = "You need to be logged in to do that."
HIDDEN_TEXT = "This post was flagged by the community and is temporarily hidden."
WITHDRAWN = "(post withdrawn by author, will be automatically deleted in 24 hours unless flagged)"
_WINDOW = timedelta(minutes=1)


# --- faults -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """Discourse's JSON 429 [429], its Retry-After in seconds; "http-date" imitates a gateway
    that sends the date form [DATE], "none" a proxy that drops the header (the body keeps
    `extras.wait_seconds`)."""

    wait_seconds: int = 39
    retry_after: Literal["seconds", "http-date", "none"] = "seconds"
    error_code: str | None = "admin_api_key_rate_limit"


@dataclass(frozen=True, kw_only=True)
class IpRateLimit:
    """The plain-text per-IP 429 of Discourse's request tracker middleware [IP429]."""

    wait_seconds: int = 8
    error_code: str = "ip_10_secs_limit"


@dataclass(frozen=True, kw_only=True)
class NginxRateLimit:
    """nginx's HTML 429 in front of Discourse, without Retry-After [NGINX]."""


@dataclass(frozen=True, kw_only=True)
class DiscourseError:
    """A Discourse JSON error `{"errors": [...], "error_type": ...}` with any status."""

    status: int
    error_type: str
    message: str


Fault = (
    RateLimit
    | IpRateLimit
    | NginxRateLimit
    | DiscourseError
    | HttpStatus
    | Delay
    | MalformedJson
    | TruncatedBody
    | Disconnect
)


class RecordedRequest(NamedTuple):
    """One request the fake received: path, query pairs, fake-clock time, and its answer."""

    path: str
    query: tuple[tuple[str, str], ...]
    at: datetime
    status: int


# --- the forum's state ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _User:
    id: int
    username: str
    name: str
    admin: bool = False
    moderator: bool = False
    primary_group: str | None = None
    trust_level: int = 1

    @property
    def staff(self) -> bool:
        return self.admin or self.moderator


@dataclass(frozen=True, kw_only=True)
class _Category:
    id: int
    slug: str
    name: str


@dataclass(frozen=True, kw_only=True)
class _Topic:
    id: int
    title: str
    slug: str
    category_id: int
    user_id: int
    created_at: datetime
    bumped_at: datetime
    pinned: bool = False
    closed: bool = False
    deleted_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class _Post:
    id: int
    topic_id: int
    post_number: int
    user_id: int
    raw: str
    created_at: datetime
    updated_at: datetime
    reply_to_post_number: int | None = None
    post_type: int = REGULAR
    action_code: str | None = None
    hidden: bool = False
    deleted_at: datetime | None = None
    user_deleted: bool = False
    version: int = 1


class _Answer(Exception):
    """Raised inside request handling to answer with a Discourse JSON error."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


@dataclass(kw_only=True)
class _Limiter:
    """Discourse's RateLimiter: a sliding window of accepted requests per key [AUTH]."""

    per_minute: int
    accepted: deque[datetime] = field(default_factory=deque)

    def wait_seconds(self, now: datetime) -> int:
        """0 if a request may go through now (and count it), else whole seconds to wait."""
        while self.accepted and self.accepted[0] <= now - _WINDOW:
            self.accepted.popleft()
        if len(self.accepted) < self.per_minute:
            self.accepted.append(now)
            return 0
        return max(1, math.ceil((self.accepted[0] + _WINDOW - now).total_seconds()))


_ANONYMOUS = _User(id=0, username="", name="anonymous", trust_level=0)
# The post fields an author's deletion leaves null [ORPHAN].
_AUTHOR_FIELDS = (
    "user_id",
    "username",
    "name",
    "display_username",
    "avatar_template",
    "primary_group_name",
    "trust_level",
)


class _Reply(Exception):
    """Raised inside request handling to answer with a prepared response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class FakeDiscourse(base.FakeServer[Fault]):
    """A scriptable fake of one Discourse site, served over real HTTP.

    Use `await start()` / `await stop()` and `base_url`. Times come from `clock` (a FakeClock in
    tests) so request counts per minute and the built-in admin API limit follow the fake clock.
    """

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
        """Reply in a topic (`reply_to` = a post number); returns the post id.

        Only regular posts bump the topic, as on Discourse (whispers and small actions do not).
        """
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
        """Answer every read of this topic (/t/{id}.json and its posts.json) with `status`.

        403 is a topic the API user may not see (moved to a private category) and 404 one
        that is gone: neither is listed any more, as on Discourse. 400 and 5xx stay listed.
        """
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

    # --- scripting: faults and timing ---------------------------------------------------------

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

    # --- server lifecycle ---------------------------------------------------------------------

    def _middlewares(self) -> list[Middleware]:
        """Every request is recorded with its answer's status."""
        return [self._record]

    def _routes(self, router: web.UrlDispatcher) -> None:
        """Topic lists, category lists, topics and their posts."""
        router.add_get("/latest", self._latest)
        router.add_get("/latest.json", self._latest)
        router.add_get("/c/{path:.+}", self._category)
        router.add_get("/t/{topic_id:\\d+}/posts.json", self._topic_posts)
        router.add_get("/t/{topic_id:\\d+}.json", self._topic_show)
        router.add_get("/t/{topic_id:\\d+}", self._topic_show)
        router.add_get("/t/{slug}/{topic_id:\\d+}.json", self._topic_show)
        router.add_get("/t/{slug}/{topic_id:\\d+}", self._topic_show)
        router.add_route("*", "/{tail:.*}", self._unknown)

    # --- request pipeline ---------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        at = self.clock.now()
        status = 0
        try:
            with self._counted():
                response: web.StreamResponse = await self._serve(request, handler)
            status = response.status
            return response
        finally:
            query = tuple((k, v) for k, v in request.query.items())
            self.requests.append(RecordedRequest(request.path, query, at, status))

    async def _serve(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await self._faulted(request)
        if response is not None:
            return response
        try:
            self._authenticate(request)
            result: web.StreamResponse = await handler(request)
        except _RateLimited as limited:
            return _rate_limited(limited.wait, header="seconds", code="admin_api_key_rate_limit")
        except _Answer as answer:
            return _error(answer.status, answer.error_type, answer.message)
        except _Reply as reply:
            return reply.response
        return result

    def _authenticate(self, request: web.Request) -> None:
        key = request.headers.get("Api-Key")
        if key is None:
            if self.login_required:
                raise _Answer(403, "not_logged_in", NOT_LOGGED_IN)  # [LOGIN]
            return  # an anonymous visitor; not subject to the admin API limit
        username = request.headers.get("Api-Username", "")
        user = self._user_by_name(username)
        if self.key_revoked or key != self.api_key or user is None:
            raise _Answer(403, "invalid_access", INVALID_CREDENTIALS)  # [AUTH]
        if self._limiter is not None:
            wait = self._limiter.wait_seconds(self.clock.now())
            if wait:
                raise _RateLimited(wait)

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        raise _Answer(404, "not_found", NOT_FOUND)

    # --- topic lists --------------------------------------------------------------------------

    def _listed(self, topic: _Topic) -> bool:
        """Whether a topic appears in the lists: not deleted, not out of sight [TOPIC]."""
        return topic.deleted_at is None and self._failing_topics.get(topic.id) not in (403, 404)

    async def _latest(self, request: web.Request) -> web.StreamResponse:
        if not request.path.endswith(".json") and not _wants_json(request):
            return _html_page(self.title)
        topics = [t for t in self._topics.values() if self._listed(t)]
        return self._topic_list(request, topics, "/latest", {"no_definitions": "true"})

    async def _category(self, request: web.Request) -> web.StreamResponse:
        """/c/{id}, /c/{slug}/{id}, each optionally + /l/latest, with or without .json."""
        path = request.match_info["path"]
        is_json = path.endswith(".json")
        path = path.removesuffix(".json").removesuffix("/l/latest")
        parts = path.split("/")
        if not parts[-1].isdigit() or len(parts) > 2:
            raise _Answer(404, "not_found", NOT_FOUND)
        category = self._categories.get(int(parts[-1]))
        if category is None or (len(parts) == 2 and parts[0] != category.slug):
            raise _Answer(404, "not_found", NOT_FOUND)
        if not is_json and not _wants_json(request):
            return _html_page(self.title)
        topics = [
            t for t in self._topics.values() if self._listed(t) and t.category_id == category.id
        ]
        return self._topic_list(request, topics, f"/c/{category.slug}/{category.id}", {})

    def _topic_list(
        self,
        request: web.Request,
        topics: list[_Topic],
        path: str,
        extra: Mapping[str, str],
    ) -> web.Response:
        try:
            page = int(request.query.get("page", "0") or 0)
        except ValueError as err:
            raise _Answer(400, "invalid_parameters", "page is invalid") from err
        if page < 0:
            raise _Answer(400, "invalid_parameters", "page is invalid")
        by_bump = sorted(topics, key=lambda t: (t.bumped_at, t.id), reverse=True)
        pinned = [t for t in by_bump if t.pinned]
        unpinned = [t for t in by_bump if not t.pinned]
        # [PIN] pinned topics lead page 0 and are not repeated further on.
        if page == 0:
            chosen = (pinned + unpinned)[: self.per_page]
        else:
            start = page * self.per_page - len(pinned)
            chosen = unpinned[start : start + self.per_page]
        users: dict[int, _User] = {}
        items = [self._list_item(topic, users) for topic in chosen]
        topic_list: dict[str, Any] = {"can_create_topic": True, "per_page": self.per_page}
        if len(chosen) == self.per_page:  # [MORE]
            query = {**extra, "page": str(page + 1)}
            topic_list["more_topics_url"] = f"{path}?" + "&".join(
                f"{k}={v}" for k, v in query.items()
            )
        topic_list["topics"] = items
        body = {
            "users": [_basic_user(u) for u in users.values()],
            "primary_groups": [],
            "flair_groups": [],
            "topic_list": topic_list,
        }
        return _json(body)

    def _list_item(self, topic: _Topic, users: dict[int, _User]) -> dict[str, Any]:
        posts = self._regular_posts(topic.id)
        last = posts[-1] if posts else None
        posters = []
        for uid in dict.fromkeys(p.user_id for p in posts):
            user = self._users[uid]
            users[uid] = user
            posters.append(
                {
                    "extras": None,
                    "description": "Original Poster" if uid == topic.user_id else "Frequent Poster",
                    "user_id": uid,
                    "primary_group_id": None,
                }
            )
        return {
            "id": topic.id,
            "title": topic.title,
            "fancy_title": topic.title,
            "slug": topic.slug,
            "posts_count": len(posts),
            "reply_count": max(0, len(posts) - 1),
            "highest_post_number": self._highest_post_number(topic.id),
            "image_url": None,
            "created_at": _wire(topic.created_at),
            "last_posted_at": _wire(last.created_at) if last else None,
            "bumped": topic.bumped_at > topic.created_at,
            "bumped_at": _wire(topic.bumped_at),
            "archetype": "regular",
            "unseen": False,
            "pinned": topic.pinned,
            "unpinned": None,
            "visible": True,
            "closed": topic.closed,
            "archived": False,
            "bookmarked": None,
            "liked": None,
            "views": 0,
            "like_count": 0,
            "has_summary": False,
            "last_poster_username": self._users[last.user_id].username if last else None,
            "category_id": topic.category_id,
            "pinned_globally": False,
            "featured_link": None,
            "posters": posters,
        }

    # --- topics and posts ---------------------------------------------------------------------

    async def _topic_show(self, request: web.Request) -> web.StreamResponse:
        topic = self._visible_topic(request)
        if not request.path.endswith(".json") and not _wants_json(request):
            return _html_page(topic.title)
        viewer = self._viewer(request)
        visible = self._stream(topic, viewer)
        chunk = visible[:CHUNK_SIZE]
        has_deleted = any(
            p.deleted_at is not None and p.post_number > 1 for p in self._all_posts(topic.id)
        )
        regular = self._regular_posts(topic.id)
        body: dict[str, Any] = {
            "post_stream": {
                "posts": [self._serialize(p, topic, viewer) for p in chunk],
                "stream": [p.id for p in visible],
            },
            "timeline_lookup": [],
            "suggested_topics": [],
            "tags": [],
            "tags_descriptions": {},
            "id": topic.id,
            "title": topic.title,
            "fancy_title": topic.title,
            "posts_count": len(regular),
            "created_at": _wire(topic.created_at),
            "views": 0,
            "reply_count": max(0, len(regular) - 1),
            "like_count": 0,
            "last_posted_at": _wire(regular[-1].created_at) if regular else None,
            "visible": True,
            "closed": topic.closed,
            "archived": False,
            "has_summary": False,
            "archetype": "regular",
            "slug": topic.slug,
            "category_id": topic.category_id,
            "word_count": sum(len(p.raw.split()) for p in regular),
            "deleted_at": _wire(topic.deleted_at) if topic.deleted_at else None,
            "user_id": topic.user_id,
            "featured_link": None,
            "pinned_globally": False,
            "pinned_at": None,
            "pinned_until": None,
            "image_url": None,
            "slow_mode_seconds": 0,
            "draft": None,
            "draft_key": f"topic_{topic.id}",
            "draft_sequence": 0,
            "unpinned": None,
            "pinned": topic.pinned,
            "current_post_number": 1,
            "highest_post_number": self._highest_post_number(topic.id),
            "deleted_by": None,
            "has_deleted": has_deleted and viewer.staff,
            "actions_summary": [],
            "chunk_size": CHUNK_SIZE,
            "bookmarked": False,
        }
        return _json(body)

    async def _topic_posts(self, request: web.Request) -> web.StreamResponse:
        topic = self._visible_topic(request)
        viewer = self._viewer(request)
        wanted: set[int] = set()
        for value in request.query.getall("post_ids[]", []):
            if not value.isdigit():
                raise _Answer(400, "invalid_parameters", "post_ids is invalid")
            wanted.add(int(value))
        if not wanted:
            raise _Answer(400, "invalid_parameters", "param is missing or the value is empty")
        # [VIEW] filter_posts_by_ids: by id, in sort order; staff also get deleted posts.
        posts = [
            p
            for p in self._all_posts(topic.id)
            if p.id in wanted
            and self._type_visible(p, viewer)
            and (p.deleted_at is None or viewer.staff)
        ]
        body = {
            "post_stream": {"posts": [self._serialize(p, topic, viewer) for p in posts]},
            "id": topic.id,
        }
        return _json(body)

    def _visible_topic(self, request: web.Request) -> _Topic:
        topic = self._topics.get(int(request.match_info["topic_id"]))
        viewer = self._viewer(request)
        if topic is None or (topic.deleted_at is not None and not viewer.staff):
            raise _Answer(404, "not_found", NOT_FOUND)
        status = self._failing_topics.get(topic.id)
        if status is not None:
            raise _Reply(_topic_failure(status))
        return topic

    def _viewer(self, request: web.Request) -> _User:
        if "Api-Key" not in request.headers:
            return _ANONYMOUS
        user = self._user_by_name(request.headers.get("Api-Username", ""))
        if user is None:  # _authenticate already refused this
            raise _Answer(403, "invalid_access", INVALID_CREDENTIALS)
        return user

    def _stream(self, topic: _Topic, viewer: _User) -> list[_Post]:
        """[VIEW] the posts a viewer sees in the stream, in order."""
        return [
            p
            for p in self._all_posts(topic.id)
            if self._type_visible(p, viewer) and (p.deleted_at is None or p.post_number == 1)
        ]

    @staticmethod
    def _type_visible(post: _Post, viewer: _User) -> bool:
        return post.post_type != WHISPER or viewer.staff or post.user_id == viewer.id

    def _serialize(self, post: _Post, topic: _Topic, viewer: _User) -> dict[str, Any]:
        """[POST] one post as PostSerializer renders it for `viewer`."""
        user = self._users[post.user_id]
        cooked = f"<p>{_escape(WITHDRAWN if post.user_deleted else post.raw)}</p>"
        if post.post_type == SMALL_ACTION:
            cooked = ""
        # [POST] BasicPostSerializer#cooked_hidden: only staff read a hidden post's text.
        cooked_hidden = post.hidden and not viewer.staff
        if cooked_hidden:
            cooked = f"<p>{HIDDEN_TEXT}</p>"
        reply_to = (
            self._posts_by_number(topic.id).get(post.reply_to_post_number)
            if post.reply_to_post_number
            else None
        )
        body: dict[str, Any] = {
            "id": post.id,
            "name": user.name,
            "username": user.username,
            "avatar_template": f"/letter_avatar_proxy/v4/letter/{user.username[0]}/{{size}}.png",
            "created_at": _wire(post.created_at),
            "cooked": cooked,
            "post_number": post.post_number,
            "post_type": post.post_type,
            "posts_count": len(self._regular_posts(topic.id)),
            "updated_at": _wire(post.updated_at),
            "reply_count": sum(
                1
                for p in self._all_posts(topic.id)
                if p.reply_to_post_number == post.post_number and p.deleted_at is None
            ),
            "reply_to_post_number": post.reply_to_post_number,
            "quote_count": 0,
            "incoming_link_count": 0,
            "reads": 1,
            "readers_count": 0,
            "score": 0,
            "yours": viewer.id == post.user_id,
            "topic_id": topic.id,
            "topic_slug": topic.slug,
            "display_username": user.name,
            "primary_group_name": user.primary_group,
            "flair_name": None,
            "flair_url": None,
            "flair_bg_color": None,
            "flair_color": None,
            "flair_group_id": None,
            "badges_granted": [],
            "version": post.version,
            "can_edit": viewer.staff,
            "can_delete": viewer.staff,
            "can_recover": viewer.staff,
            "can_see_hidden_post": viewer.staff,
            "can_wiki": viewer.staff,
            "read": True,
            "user_title": None,
            "bookmarked": False,
            "actions_summary": [],
            "moderator": user.moderator,
            "admin": user.admin,
            "staff": user.staff,
            "user_id": user.id,
            "hidden": post.hidden,
            "trust_level": user.trust_level,
            "deleted_at": _wire(post.deleted_at) if post.deleted_at else None,
            "user_deleted": post.user_deleted,
            "edit_reason": None,
            "can_view_edit_history": True,
            "wiki": False,
            "reviewable_id": 0,
            "reviewable_score_count": 0,
            "reviewable_score_pending_count": 0,
            "mentioned_users": [],
        }
        if post.hidden:
            body["hidden_reason_id"] = 1  # flag_threshold_reached
        if cooked_hidden:
            body["cooked_hidden"] = True
        if reply_to is not None:
            replied = self._users[reply_to.user_id]
            body["reply_to_user"] = {
                "username": replied.username,
                "name": replied.name,
                "avatar_template": body["avatar_template"],
            }
        if post.action_code:
            body["action_code"] = post.action_code
        if post.id in self._orphans:
            body.update(dict.fromkeys(_AUTHOR_FIELDS))
            body.update(moderator=False, admin=False, staff=False)
        for key in self._dropped_fields.get(post.id, ()):
            body.pop(key, None)
        return body

    # --- faults, delays and responses ---------------------------------------------------------

    async def _platform_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """Discourse's and its proxies' rate limits, its JSON errors, broken JSON."""
        if isinstance(fault, RateLimit):
            return _rate_limited(
                fault.wait_seconds,
                header=fault.retry_after,
                code=fault.error_code,
                now=self.clock.now(),
            )
        if isinstance(fault, IpRateLimit):
            text = (
                "Slow down, too many requests from this IP address.\n"
                f"Please retry again in {fault.wait_seconds} seconds.\n"
                f"Error code: {fault.error_code}.\n"
            )
            headers = {
                "Retry-After": str(fault.wait_seconds),
                "Discourse-Rate-Limit-Error-Code": fault.error_code,
            }
            return web.Response(status=429, text=text, content_type="text/plain", headers=headers)
        if isinstance(fault, NginxRateLimit):
            html = (
                "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
                "<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n"
            )
            return web.Response(status=429, text=html, content_type="text/html")
        if isinstance(fault, DiscourseError):
            return _error(fault.status, fault.error_type, fault.message)
        # A cut-and-pasted object with a trailing comma: what a broken proxy might send.
        return _raw_json(b'{"topic_list": {"topics": [{"id": 1,},]}}')

    def _truncated_sample(self, request: web.Request) -> tuple[bytes, str]:
        """A topic list to cut in half."""
        full = orjson.dumps({"topic_list": {"topics": [{"id": 1, "title": "x" * 300}]}})
        return full, "application/json"

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


class _RateLimited(_Answer):
    """The built-in admin API limit was hit: answer like [429]."""

    def __init__(self, wait: int) -> None:
        super().__init__(429, "rate_limit", _too_many_times(wait))
        self.wait = wait


# --- helpers ----------------------------------------------------------------------------------


def _wire(moment: datetime) -> str:
    """[TIME] `2024-01-05T21:13:04.916Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC)


def _slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug or "topic"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _basic_user(user: _User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "avatar_template": f"/letter_avatar_proxy/v4/letter/{user.username[0]}/{{size}}.png",
        "trust_level": user.trust_level,
        **({"admin": True} if user.admin else {}),
        **({"moderator": True} if user.moderator else {}),
    }


def _time_left(seconds: int) -> str:
    return f"{seconds} second" if seconds == 1 else f"{seconds} seconds"


def _too_many_times(seconds: int) -> str:
    return (
        f"You’ve performed this action too many times. Please wait {_time_left(seconds)}"
        " before trying again."
    )


def _rate_limited(
    seconds: int,
    *,
    header: Literal["seconds", "http-date", "none"],
    code: str | None,
    now: datetime | None = None,
) -> web.Response:
    """[429] Discourse's JSON rate-limit answer; [DATE] with the header as an HTTP-date."""
    headers: dict[str, str] = {}
    if header == "seconds":
        headers["Retry-After"] = str(seconds)
    elif header == "http-date":
        moment = (now or datetime.now(UTC)) + timedelta(seconds=seconds)
        headers["Retry-After"] = format_datetime(moment.astimezone(UTC), usegmt=True)
    if code:
        headers["Discourse-Rate-Limit-Error-Code"] = code
    body = {
        "errors": [_too_many_times(seconds)],
        "error_type": "rate_limit",
        "extras": {"wait_seconds": seconds, "time_left": _time_left(seconds)},
    }
    return _raw_json(orjson.dumps(body), status=429, headers=headers)


def _error(
    status: int, error_type: str, message: str, extras: Mapping[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"errors": [message], "error_type": error_type}
    if extras is not None:
        body["extras"] = dict(extras)
    return _raw_json(orjson.dumps(body), status=status)


def _topic_failure(status: int) -> web.Response:
    """How Discourse answers a read of a topic that fails: [TOPIC] 403/404/400, [500] 5xx."""
    if status >= 500:
        reason = "Internal Server Error" if status == 500 else "Server Error"
        return _raw_json(orjson.dumps({"status": status, "error": reason}), status=status)
    if status == 400:
        return _error(
            400,
            "invalid_parameters",
            "You supplied invalid parameters to the request: id",
        )
    # The generic page, never the private topic's title (page_not_found.title in server.en.yml).
    page = "<div class='page-not-found'><h1>Oops! That page doesn’t exist or is private.</h1></div>"
    extras = {"title": "Page Not Found", "html": page, "group": None}
    if status == 403:
        return _error(403, "invalid_access", INVALID_ACCESS, extras)
    return _error(404, "not_found", NOT_FOUND, extras)


def _json(body: Mapping[str, Any] | Sequence[Any]) -> web.Response:
    return _raw_json(orjson.dumps(body))


def _raw_json(
    raw: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return base.json_response(raw, status=status, charset="utf-8", headers=headers)


def _html_page(title: str) -> web.Response:
    """What a browser gets without `.json` or an Accept: application/json header."""
    return web.Response(
        text=f"<!DOCTYPE html><html><head><title>{_escape(title)}</title></head></html>",
        content_type="text/html",
    )
