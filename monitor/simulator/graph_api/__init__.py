"""A fake Facebook Graph API (Pages, feed, comments, batches, errors) on a real aiohttp server.

Wire formats are imitated from real payloads, not from our reading of the docs. Sources, cited
by tag next to the code that imitates them:
[FEED]   Graph API guide "Field Expansion", example response of GET /me/feed: time-based paging
         with absolute `previous`/`next` URLs carrying `since`/`until`, `__paging_token=enc_...`,
         `__previous`, and the caller's `access_token` when it was sent as a query parameter;
         default post fields created_time, message, id; `.limit(n)` on an edge named in `fields`.
         https://developers.facebook.com/docs/graph-api/guides/field-expansion
[CURSOR] Graph API "Paginated Results": `paging.cursors.{before,after}` (base64 strings), absolute
         `previous`/`next`; "use the absence of next" to detect the end.
         https://developers.facebook.com/docs/graph-api/results
[EDGE]   /{object-id}/comments reference: `filter` toplevel (default) or stream, `order`
         chronological / reverse_chronological, `summary` with total_count.
         https://developers.facebook.com/docs/graph-api/reference/object/comments
[NESTED] A captured `fields=comments` expansion: the nested edge is `{"data": [...], "paging":
         {"cursors": {"after", "before"}, "next": ".../{object-id}/comments?limit=25&after=..."}}`
         — the nested `next` carries limit and cursor only, not the nested modifiers or fields
         (https://facebook-docs.oklahome.net/archives/52092088.html); an edge without items is
         left out of the expansion.
[IDS]    Multiple-ID read `GET /?ids=A,B&fields=...`: an object keyed by the ids as requested
         (sammyk.me "Optimizing request queries to the Facebook Graph API"); when one id does not
         exist the whole call fails, "(#803) Some of the aliases you requested do not exist: X"
         (nov/fb_graph#286, mobolic/facebook-sdk#315) and, in current versions, code 100 with
         the same text; at most 50 ids per call.
[V26IDS] From v26.0 root multi-ID reads are refused: "Root requests using GET /?ids=... return
         an error. Use per-object requests or supported batching" (Meta's v26.0 changelog, quoted
         in restfb/restfb#1692). The fake refuses them (HTTP 400, code 100) from v26.0 on and
         still serves them to older versions.
[PROOF]  appsecret_proof = hex HMAC-SHA256(access token, app secret), a query parameter (batch:
         a top-level parameter). With "Require App Secret" on, a call without it fails with
         HTTP 400 GraphMethodException code 100 "API calls from the server require an
         appsecret_proof argument" (sromku/android-simple-facebook#160, dektrium/yii2-user#305);
         a wrong one fails with "Invalid appsecret_proof provided in the API argument"
         (node-facebook/facebook-node-sdk#111).
[BATCH]  Graph API "Batch Requests": POST with form field `batch` = JSON array of
         {"method", "relative_url"} (at most 50; each counts as one call for rate limiting) and
         `include_headers`; the answer is a JSON array in request order of {"code", "headers":
         [{"name", "value"}], "body": "<JSON string>"}, null for an operation that did not
         complete in time. https://developers.facebook.com/docs/graph-api/batch-requests,
         facebookarchive/php-graph-sdk#619 (null entries); sub-response headers such as
         `Content-Type: text/javascript; charset=UTF-8` and `WWW-Authenticate`: facebook-batch
         (npm) BatchRequestError tests.
[DEBUG]  GET /debug_token?input_token=: {"data": {app_id, type, application,
         data_access_expires_at, expires_at (0 = never), is_valid, issued_at, scopes, user_id}}.
         https://developers.facebook.com/docs/graph-api/reference/debug_token
[TIME]   `"created_time": "2014-03-10T18:20:00+0000"` in a captured page feed,
         sdsdsxcxc/facebook-showposts test_tools/facebook_api_data.py.
[E100]   HTTP 400, GraphMethodException code 100 subcode 33 "Unsupported get request. Object with
         ID '...' does not exist, ...": facebook/facebook-python-business-sdk#239,
         roughike/flutter_facebook_login#44.
[E190]   OAuthException 190 "Invalid OAuth access token data.": home-assistant/core#152416;
         190/463 "Error validating access token: Session has expired on ...", with fbtrace_id:
         snarfed/bridgy#59, staciax/valorant-discord-bot#105; 190/460 "... invalidated because
         the user changed their password ...": roughike/flutter_facebook_login#151.
[E104]   OAuthException 104 "An access token is required to request this resource.":
         node-facebook/facebook-node-sdk#105, spring-guides/gs-consuming-rest#10.
[E4]     `{"message": "(#4) Application request limit reached", "type": "OAuthException",
         "is_transient": true, "code": 4, "fbtrace_id": ...}`:
         facebook/facebook-nodejs-business-sdk#97.
[E32]    "(#32) Page request limit reached" and the `X-Page-Usage` JSON header
         ({'call_count', 'total_cputime', 'total_time'}): facebookarchive/php-graph-sdk#634.
[HDRS]   Real response headers of an error: `x-app-usage: {"call_count":0,"total_cputime":0,
         "total_time":0}`, `WWW-Authenticate: OAuth "Facebook Platform" "invalid_request" "..."`,
         `facebook-api-version`, `x-fb-request-id`, `x-fb-trace-id`,
         `Content-Type: application/json; charset=UTF-8`: daroczig/fbRads#141.
[BUC]    `x-business-use-case-usage`: {business_id: [{type, call_count, total_cputime,
         total_time, estimated_time_to_regain_access}]}: leapforce-dev/lib-go-facebook
         RateLimit.go; Graph API "Rate Limits" overview.
"""

from __future__ import annotations

from monitor.simulator.base import Delay, Disconnect, HttpStatus, MalformedJson, TruncatedBody
from monitor.simulator.graph_api.batch import GraphBatches
from monitor.simulator.graph_api.errors import Fault, GraphError
from monitor.simulator.graph_api.instagram import InstagramReads
from monitor.simulator.graph_api.messenger import MessengerReads
from monitor.simulator.graph_api.model import (
    BATCH_LIMIT,
    IDS_LIMIT,
    WIRE_TIME_FORMAT,
    RecordedRequest,
)

__all__ = [
    "BATCH_LIMIT",
    "IDS_LIMIT",
    "WIRE_TIME_FORMAT",
    "Delay",
    "Disconnect",
    "FakeGraphApi",
    "Fault",
    "GraphError",
    "HttpStatus",
    "MalformedJson",
    "RecordedRequest",
    "TruncatedBody",
]


class FakeGraphApi(InstagramReads, MessengerReads, GraphBatches):
    """A scriptable fake of Facebook Pages on the Graph API, served over real HTTP."""

    # `FakeGraphApi(page_id, page_name, token)` serves one page; `add_page` adds more, all on
    # the same token. Use `await start()` / `await stop()` and `base_url`, or mount `make_app()`
    # with pytest-aiohttp's `aiohttp_server` (base URL: `server.make_url("/v26.0")`).
