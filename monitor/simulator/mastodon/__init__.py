"""A fake Mastodon server (hashtag timelines, notifications, statuses, context) over real HTTP.

Wire formats and behaviour are imitated from Mastodon's own controllers and serializers
(mastodon/mastodon) and the API docs (docs.joinmastodon.org), cited by tag next to the code:
[STATUS]  docs.joinmastodon.org/entities/Status and app/serializers/rest/status_serializer.rb:
          id (a string), created_at, in_reply_to_id, in_reply_to_account_id, sensitive,
          spoiler_text, visibility, language, uri, url, replies/reblogs/favourites_count,
          edited_at, content (HTML), reblog, account, media_attachments, mentions
          [{id, username, url, acct}], tags [{name, url}], emojis, card, poll.
[ACCOUNT] entities/Account: id, username, acct ("user" for local accounts, "user@domain" for
          remote ones), display_name, url, ...
[ID]      lib/mastodon/snowflake.rb: ids are milliseconds << 16 plus a sequence, as strings;
          docs "Paginating by ID": compare them as integers, never as strings.
[TIME]    docs.joinmastodon.org/api/datetime-formats: "2024-01-08T11:00:00.000Z".
[HTML]    app/lib/text_formatter.rb: <p> paragraphs, <br />, hashtags as
          <a class="mention hashtag" rel="tag">#<span>tag</span></a>, mentions in an h-card span.
[TAG]     app/controllers/api/v1/timelines/tag_controller.rb and methods/timelines: public,
          limit 20 (max 40), max_id/since_id/min_id; TagFeed lists statuses, never boosts;
          pagination headers are set unless the page is empty, a next link whatever its size.
[NOTE]    app/controllers/api/v1/notifications_controller.rb, methods/notifications: needs a
          token with read:notifications, `types[]`/`exclude_types[]`, limit 40 (max 80), Link
          next and prev on every non-empty page. Notification {id, type, created_at, account
          (who caused it), status}; NotifyService notifies mentioned local accounts only, so a
          reply reaches the brand as a mention (clients start a reply with "@author").
[ACCOUNT_STATUSES] app/controllers/api/v1/accounts/statuses_controller.rb: boosts included
          unless exclude_reblogs; a next link only after a full page (records_continue?).
[LOOKUP]  methods/accounts#lookup: GET /api/v1/accounts/lookup?acct=; 404 when unknown.
[CONTEXT] methods/statuses#context: {"ancestors": oldest first, "descendants": depth first}.
[BOOST]   entities/Status#reblog: a boost is a status of its own whose `reblog` holds the
          original; its url is null and its content empty.
[EDIT]    entities/Status#edited_at: an edit keeps the id and created_at, sets edited_at.
[DELETE]  RemoveStatusService: a deleted status answers 404 {"error": "Record not found"};
          its notifications and boosts go with it; replies stay, their ancestors stop there.
[VISIBILITY] public/unlisted to anyone, private/direct to the author and mentioned accounts.
[AUTH]    app/controllers/api/base_controller.rb: an invalid token answers 401 {"error": "The
          access token is invalid"}; `authorize_if_got_token!` makes a sent token's scopes count
          even on public endpoints (lookup needs read:accounts then), 403 {"error": "This action
          is outside the authorized scopes"}.
[RATE]    config/initializers/rack_attack.rb: 300 requests per 5 minutes per token (per IP
          address without one); app/controllers/concerns/rate_limit_headers.rb sends
          X-RateLimit-Limit, -Remaining and -Reset (the window's end, `iso8601(6)`).
[429]     rack_attack.rb `throttled_responder`: 429 {"error": "Too many requests"} with the
          same three headers (Remaining 0) and no Retry-After.
[PAGE]    app/models/concerns/paginable.rb `paginate_by_id`: min_id returns the oldest statuses
          after it (still sent newest first); since_id the newest ones.
[LINK]    Api::BaseController#set_pagination_headers: `<https://host/api/v1/...?max_id=X>;
          rel="next", <...?min_id=Y>; rel="prev"`, repeating limit and the filters.
"""

from monitor.simulator.base import Delay, Disconnect, HttpStatus, MalformedJson, TruncatedBody
from monitor.simulator.mastodon.model import RecordedRequest
from monitor.simulator.mastodon.server import FakeMastodon, Fault, Throttled

__all__ = [
    "Delay",
    "Disconnect",
    "FakeMastodon",
    "Fault",
    "HttpStatus",
    "MalformedJson",
    "RecordedRequest",
    "Throttled",
    "TruncatedBody",
]
