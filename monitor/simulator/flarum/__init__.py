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

from monitor.simulator.base import Delay, Disconnect, MalformedJson, Throttle, TruncatedBody
from monitor.simulator.flarum.errors import Fault, FlarumError, HttpStatus
from monitor.simulator.flarum.model import (
    ADMIN_GROUP,
    ADMIN_USER,
    GUEST_GROUP,
    MEMBER_GROUP,
    MOD_GROUP,
    PostField,
    RecordedRequest,
)
from monitor.simulator.flarum.server import FakeFlarum

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
    "PostField",
    "RecordedRequest",
    "Throttle",
    "TruncatedBody",
]
