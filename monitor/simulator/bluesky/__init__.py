"""A fake Bluesky PDS (sessions, post search, notifications, threads, author feeds) over HTTP.

Wire formats follow bluesky-social/atproto's lexicons and servers, cited by tag in the code:
[AUTH]   com.atproto.server.createSession {identifier, password} -> {accessJwt, refreshJwt,
         handle, did, active}; a wrong password is 401 {"error": "AuthenticationRequired",
         "message": "Invalid identifier or password"}; no token is 401 "AuthMissing"
         ("Authentication Required"); an expired access token is 400 {"error": "ExpiredToken",
         "message": "Token has expired"} (MarshalX/atproto#514, drasticactions/FishyFlip#144).
         Access tokens live 2 hours (MarshalX/atproto#12).
[REFRESH] com.atproto.server.refreshSession with the refresh token as Bearer gives a new pair;
         the used refresh token is revoked: 400 ExpiredToken "Token has been revoked"
         (MarshalX/atproto#158, bluesky-social/bsky-docs#330).
[SEARCH] app.bsky.feed.searchPosts q, sort (latest|top), since (inclusive, on sortAt), until,
         limit 1-100 (default 25), cursor -> {posts: [postView], cursor?, hitsTotal?}; the
         cursor is an offset ("cursor=25" in bluesky-social/indigo#797). Unauthenticated
         requests have been refused with 403 since 2025-01-21 (bluesky-social/atproto#3423,
         #3891): "Request forbidden by administrative rules." (#3583).
[NOTIF]  app.bsky.notification.listNotifications limit 1-100 (default 50), cursor, reasons[]
         -> {notifications: [{uri, cid, author, reason (like, repost, follow, mention, reply,
         quote), reasonSubject?, record, isRead, indexedAt, labels}], cursor?}.
[THREAD] app.bsky.feed.getPostThread uri, depth (default 6), parentHeight (default 80) ->
         {thread: threadViewPost{post, parent?, replies?}}; a missing post is 400 {"error":
         "NotFound", "message": "Post not found: <uri>"}; a deleted parent is
         {"$type": "app.bsky.feed.defs#notFoundPost", uri, notFound: true}; at the depth limit
         `replies` is absent (packages/bsky/src/api/app/bsky/feed/getPostThread.ts).
[AUTHOR] app.bsky.feed.getAuthorFeed actor (handle or DID), limit 1-100 (default 50), cursor,
         filter (posts_with_replies, the default; posts_no_replies; posts_with_media;
         posts_and_author_threads) -> {feed: [feedViewPost{post, reply?{root, parent},
         reason?}], cursor?}, newest first. A repost is the reposted post with reason
         {"$type": "app.bsky.feed.defs#reasonRepost", by, indexedAt}; reply root and parent
         are a postView or a #notFoundPost once deleted (lexicons/app/bsky/feed/getAuthorFeed.json
         and defs.json feedViewPost, replyRef). An unknown actor is 400 InvalidRequest
         "Profile not found" (packages/bsky getAuthorFeed.ts).
[DELETE] Deleting a post deletes its record only: replies stay, their records still name it in
         reply.root / reply.parent, a thread view of a reply shows the parent as #notFoundPost,
         and getPostThread of the deleted uri is 400 NotFound (bluesky-social/atproto#1103,
         "deleted posts break thread navigation"; #374 on re-attaching orphaned replies;
         social-app#3686, replies to a deleted root still listed on the author's profile).
[VIEW]   app.bsky.feed.defs#postView: uri, cid, author (profileViewBasic), record, embed?,
         replyCount, repostCount, likeCount, quoteCount, indexedAt, viewer, labels.
[FACET]  app.bsky.richtext.facet: {index: {byteStart, byteEnd} (UTF-8), features: [#mention
         {did} | #tag {tag} | #link {uri}]}; the record's own `tags` hold up to 8 more.
[TID]    Record keys are TIDs: 13 base32-sortable characters of microseconds and a clock id
         (atproto.com/specs/tid).
[REPOST] A repost is an app.bsky.feed.repost record, not a post: search never returns it;
         it notifies the reposted post's author with reason "repost".
[RATE]   Headers ratelimit-limit, ratelimit-remaining, ratelimit-reset (unix seconds) and
         ratelimit-policy "3000;w=300" on every answer (MarshalX/atproto#158); 3000 requests
         per 5 minutes per IP (docs.bsky.app/docs/advanced-guides/rate-limits); over it,
         429 {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}.
[ERR]    XRPC errors are {"error": name, "message": text} (atproto.com/specs/xrpc).
"""

from monitor.simulator.base import Delay, Disconnect, HttpStatus, MalformedJson, TruncatedBody
from monitor.simulator.bluesky.server import FakeBluesky, Fault, RateLimit, RecordedRequest

__all__ = [
    "Delay",
    "Disconnect",
    "FakeBluesky",
    "Fault",
    "HttpStatus",
    "MalformedJson",
    "RateLimit",
    "RecordedRequest",
    "TruncatedBody",
]
