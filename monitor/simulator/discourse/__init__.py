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

from monitor.simulator.base import Delay, Disconnect, HttpStatus, MalformedJson, TruncatedBody
from monitor.simulator.discourse.errors import (
    DiscourseError,
    Fault,
    IpRateLimit,
    NginxRateLimit,
    RateLimit,
)
from monitor.simulator.discourse.model import (
    MODERATOR_ACTION,
    REGULAR,
    SMALL_ACTION,
    WHISPER,
    RecordedRequest,
)
from monitor.simulator.discourse.server import FakeDiscourse

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
