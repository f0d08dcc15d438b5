"""A fake phpBB board serving Atom forum/topic feeds (conditional requests, faults) over HTTP.

Wire formats are imitated from phpBB's own code and from feeds captured on real boards, not from
our reading of the docs. Sources, cited by tag next to the code that imitates them:
[TPL]    The Atom template, phpbb/phpbb phpBB/styles/all/template/feed.xml.twig: entry order
         author, updated, published, id, link, title (CDATA), category (only with statistics and
         a forum name), content type="html" with xml:base and a CDATA body that ends in
         `<p>Statistics: ...</p><hr />`. Note the stray space in `{{ row.updated }} ` when a post
         was edited.
[CTRL]   phpbb/phpbb phpBB/phpbb/feed/controller/feed.php: routes /feed, /feed/forum/{id},
         /feed/topic/{id}; Content-Type application/atom+xml; charset=UTF-8; Last-Modified = the
         newest published/updated time of the entries (the current time when there is none);
         no ETag, no 304 of its own; feed disabled -> 404; unauthorized -> 403.
[POST]   phpBB/phpbb/feed/post_base.php: entry link `viewtopic.php?t={topic}&amp;p={post}#p{post}`,
         published = post_time, updated = post_edit_time, statistics "Posted by <a
         href=memberlist.php?mode=viewprofile&amp;u=N>name</a> — date" (separator U+2014).
[TOPIC]  phpBB/phpbb/feed/topic.php: the newest `feed_limit_post` posts of one topic,
         `ORDER BY p.post_time DESC, p.post_id DESC`; a topic that is not approved (soft-deleted,
         unapproved) -> 403 for guests, a missing topic -> 404 (no_topic_exception).
[FORUM]  phpBB/phpbb/feed/forum.php and overall.php: take the `feed_limit_post` most recently
         active topics, then their posts newer than the last of those topics' last post time,
         newest first, limited to `feed_limit_post`; titles prefixed "Forum name • ".
[TOPICS] phpBB/phpbb/feed/topics.php and topic_base.php: /feed/topics (= topics_new) lists the
         first post of the `feed_limit_topic` (default 10) newest topics, linked
         `viewtopic.php?t={topic}&amp;p={first post}`, title "Forum • topic title", statistics
         with "Replies N — Views N".
[HELPER] phpBB/phpbb/feed/helper.php format_date(): `gmdate("Y-m-d\\TH:i:s", t + offset)` plus
         the board's *current* offset ("+01:00") for every date; control characters (newlines)
         are removed from the content, line breaks are already `<br>`.
[LIMIT]  Default `feed_limit_post` = 15: phpBB's install schema_data.sql.
[FTEST]  phpbb/phpbb tests/functional/feed_test.php: soft-deleted and unapproved posts are left
         out for guests; a soft-deleted/unapproved topic's feed answers 403 SORRY_AUTH_READ_TOPIC;
         a forum excluded from feeds answers 404 NO_FEED; feeds live under app.php/feed.
[COMPAT] phpbb/phpbb tests/functional/controllers_compatibility_test.php: the old
         `feed.php?f=1` / `feed.php?t=1` URLs answer 301 to app.php/feed/forum/1, /topic/1.
[REAL30] Captured phpBB 3.0 topic feeds of classicshell.net in coddec/Classic-Shell
         (www.classicshell.net/forum/feed*.php): dates like `2013-10-14T11:45:02-07:00`,
         `<author><name><![CDATA[...]]></name></author>`, smilies as `<img ... alt=":o">`,
         `Statistics: Posted by Guest — ...` for guests.
[POSTONLY] Newer 3.3 boards link entries as `viewtopic.php?p={post}#p{post}` without the topic id
         (a captured pokerth.net feed slice in a public test script; stardot.org.uk notes "A feed
         entry links only to viewtopic.php?p=<post>"); `link_style="post_only"` imitates them.
         Their topic pages carry `<link rel="canonical" href=".../viewtopic.php?t=N">`
         (a captured forums.nesdev.org page; phpbb/phpbb#2468).
[BUSY]   phpbb/phpbb phpBB/phpbb/session.php session_create(): more new sessions in a minute than
         the ACP "Limit sessions" (`active_sessions`) -> `send_status_line(503, 'Service
         Unavailable')` + BOARD_UNAVAILABLE, without Retry-After. A feed reader sends no cookie,
         so every request of ours starts a session: a busy board refuses every Nth of them.
[GENERAL] phpBB/includes/functions.php msg_handler(), E_USER_ERROR ("General Error", e.g. an SQL
         error while rendering one topic): "Do not send 200 OK, but service unavailable on
         errors" -> 503, no Retry-After, on every read of that topic.
[PROXY]  What sits in front of a board: nginx limit_req answers 503 by default
         (`limit_req_status 503`; 429 once configured, mitchellkrogza/nginx-ultimate-bad-bot-
         blocker#533), a CDN or host throttle 429 with Retry-After in seconds or as an HTTP-date
         (RFC 9110 section 10.2.3 allows both), a PHP fatal error a bare 500, a web application
         firewall a 400. phpBB's feed controller itself answers only 404 and 403
         (phpBB/phpbb/feed/controller/feed.php).
[BROKEN] An entry without <published>/<updated>, without <id>/<link> or without <author>
         comes from no phpBB version we know of; it stands for an extension or a proxy that
         rewrites feeds, so the client's "one bad object never stops the source" can be tested.
Conditional requests (ETag / If-Modified-Since -> 304) are what a cache or proxy in front of the
board adds ([CTRL]: phpBB itself only sends Last-Modified); `etag` and `honour_conditionals`
switch them off to imitate a bare board.
"""

from monitor.simulator.base import (
    Delay,
    Disconnect,
    HttpStatus,
    RetryAfter,
    Throttle,
    TruncatedBody,
)
from monitor.simulator.phpbb.faults import (
    CutFeed,
    EntityExpansion,
    Fault,
    HtmlPage,
    MalformedXml,
    rate_limited,
)
from monitor.simulator.phpbb.model import (
    ANONYMOUS,
    BOARD_UNAVAILABLE,
    NO_FEED,
    NO_FORUM,
    NO_POST,
    NO_TOPIC,
    SORRY_AUTH_READ,
    SORRY_AUTH_READ_TOPIC,
    EntryField,
    LinkStyle,
    RecordedRequest,
    Visibility,
)
from monitor.simulator.phpbb.server import FakePhpbbBoard

__all__ = [
    "ANONYMOUS",
    "BOARD_UNAVAILABLE",
    "NO_FEED",
    "NO_FORUM",
    "NO_POST",
    "NO_TOPIC",
    "SORRY_AUTH_READ",
    "SORRY_AUTH_READ_TOPIC",
    "CutFeed",
    "Delay",
    "Disconnect",
    "EntityExpansion",
    "EntryField",
    "FakePhpbbBoard",
    "Fault",
    "HtmlPage",
    "HttpStatus",
    "LinkStyle",
    "MalformedXml",
    "RecordedRequest",
    "RetryAfter",
    "Throttle",
    "TruncatedBody",
    "Visibility",
    "rate_limited",
]
