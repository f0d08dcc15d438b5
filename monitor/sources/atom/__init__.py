"""phpBB Atom feeds: forum and topic feeds into domain messages, with conditional requests."""

# Feeds live at `{base_url}/app.php/feed/forum/{id}` and `/app.php/feed/topic/{id}`; boards before
# phpBB 3.1 serve them as `/feed.php?f={id}` and `?t={id}` (3.1+ answers those with a 301 to the
# app.php form, which is followed: redirects within the board's origin only). Only the app.php
# form is built here.
#
# What a feed can and cannot tell, and what we do about it:
# - Entries carry an author *name* only: moderators match by username (case-insensitively, as
#   phpBB compares usernames); "id:"/"group:" moderator entries cannot match and are ignored.
# - A topic feed holds only the newest `feed_limit_post` posts (15 by default, 10 on some
#   boards). A thread is reported complete (so missing posts become tombstones) only when the
#   feed proves it: fewer entries than a feed of this board has ever shown (that many fit in the
#   board's window; or the limit given to the constructor), or the topic's first post is there.
#   A 404 topic feed means the topic was deleted (a deleted thread); a 403 that it is out of
#   guests' sight (soft deleted, unapproved, moved to a private forum): skipped, not deleted;
#   both only while some other feed of the board answers (otherwise it is the board refusing
#   us: AuthError / FatalError). Another 4xx skips the topic; one failing twice in a row (a
#   5xx, an unreadable feed) while the board answers is skipped too, and so is an entry
#   without a post id or a date.
# - A throttle (429, 503 + Retry-After) or a transient failure in the middle of a poll keeps what
#   was read: the batch is marked interrupted and the cursor's `resume` part lists what is left.
# - phpBB has no reply-to: every post's parent is the topic's first post, once known: from the
#   board's "new topics" feed (`/app.php/feed/topics`, first posts of the newest topics) or
#   from a complete read of the topic.
# - Newer 3.3 boards link entries as `viewtopic.php?p=N` without the topic id; such forum-feed
#   entries get their topic from the topic feeds read in the same poll, from the cursor's
#   post -> topic map, or, last, from the canonical link of `viewtopic.php?p=N`.
# - Unchanged feeds cost a 304: ETag / Last-Modified per feed are kept in the cursor.

from monitor.sources.atom._client import ACCEPT, FULL_READ_AFTER, MAX_FEED_BYTES
from monitor.sources.atom._feed import ATOM, FeedEntry, FeedError, html_to_text, parse_feed
from monitor.sources.atom._source import MAX_LOOKUPS, PhpbbAtomSource
from monitor.sources.atom._state import TOPIC_MAP_LIMIT

__all__ = [
    "ACCEPT",
    "ATOM",
    "FULL_READ_AFTER",
    "MAX_FEED_BYTES",
    "MAX_LOOKUPS",
    "TOPIC_MAP_LIMIT",
    "FeedEntry",
    "FeedError",
    "PhpbbAtomSource",
    "html_to_text",
    "parse_feed",
]
