"""The AppView's reads over the fake network: post views, search, notifications, threads."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from monitor.simulator.bluesky.model import (
    FakePost,
    Interaction,
    Network,
    cid_of,
    profile,
    wire_time,
)

THREAD_VIEW = "app.bsky.feed.defs#threadViewPost"
NOT_FOUND_POST = "app.bsky.feed.defs#notFoundPost"
POST_VIEW = "app.bsky.feed.defs#postView"
REASON_REPOST = "app.bsky.feed.defs#reasonRepost"
# The `filter` values of getAuthorFeed the fake knows ([AUTHOR]).
AUTHOR_FILTERS = (
    "posts_with_replies",
    "posts_no_replies",
    "posts_with_media",
    "posts_and_author_threads",
)
_TERM = re.compile(r'"([^"]+)"|(\S+)')


def post_view(post: FakePost, network: Network) -> dict[str, Any]:
    """app.bsky.feed.defs#postView ([VIEW])."""
    live = [p for p in network.posts.values() if not p.deleted]
    view: dict[str, Any] = {
        "uri": post.uri,
        "cid": post.cid,
        "author": profile(post.author),
        "record": post.record(),
        "replyCount": sum(1 for p in live if p.reply is not None and p.reply[1] is post),
        "repostCount": _count(network, "repost", post),
        "likeCount": _count(network, "like", post),
        "quoteCount": sum(1 for p in live if p.quote is post),
        "indexedAt": wire_time(post.indexed_at),
        "viewer": {},
        "labels": [],
    }
    quoted = post.quote
    if quoted is not None:
        inner: dict[str, Any] = (
            {"$type": "app.bsky.embed.record#viewNotFound", "uri": quoted.uri, "notFound": True}
            if quoted.deleted
            else {
                "$type": "app.bsky.embed.record#viewRecord",
                "uri": quoted.uri,
                "cid": quoted.cid,
                "author": profile(quoted.author),
                "value": quoted.record(),
                "indexedAt": wire_time(quoted.indexed_at),
            }
        )
        view["embed"] = {"$type": "app.bsky.embed.record#view", "record": inner}
    return view


def search(
    network: Network, q: str, since: datetime | None, until: datetime | None
) -> list[FakePost]:
    """Live posts matching every term of `q` ('#tag' matches tags), newest sortAt first."""
    terms = [(m.group(1) or m.group(2)).lower() for m in _TERM.finditer(q)]
    found = [
        post
        for post in network.posts.values()
        if not post.deleted
        and all(_matches(post, term) for term in terms)
        and (since is None or post.sort_at >= since)  # inclusive ([SEARCH])
        and (until is None or post.sort_at < until)
    ]
    return sorted(found, key=lambda p: (p.sort_at, p.uri), reverse=True)


def notifications(network: Network, did: str) -> list[tuple[datetime, dict[str, Any]]]:
    """The account's notifications, newest first, with their indexedAt for paging ([NOTIF])."""
    items: list[tuple[datetime, str, dict[str, Any]]] = []
    for post in network.posts.values():
        if post.deleted or post.author.did == did:
            continue
        reason, subject = _reason(post, did)
        if reason is None:
            continue
        entry = {
            "uri": post.uri,
            "cid": post.cid,
            "author": profile(post.author),
            "reason": reason,
            "record": post.record(),
            "isRead": False,
            "indexedAt": wire_time(post.indexed_at),
            "labels": [],
        }
        if subject is not None:
            entry["reasonSubject"] = subject
        items.append((post.indexed_at, post.uri, entry))
    for done in network.interactions:
        if done.target.did != did or (done.subject is not None and done.subject.deleted):
            continue
        items.append((done.at, done.uri, _interaction(done)))
    items.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [(at, entry) for at, _, entry in items]


def author_feed(
    network: Network, did: str, feed_filter: str
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """An account's posts and reposts as feedViewPosts, newest first: (time, uri, entry)."""
    items: list[tuple[datetime, str, dict[str, Any]]] = []
    for post in network.posts.values():
        if post.deleted or post.author.did != did or not _shown(post, did, feed_filter):
            continue
        items.append((post.sort_at, post.uri, _feed_post(post, network)))
    if feed_filter != "posts_with_media":  # the fake has no media; reposts are not the author's
        for done in network.interactions:
            if done.reason != "repost" or done.author.did != did or done.subject is None:
                continue
            if done.subject.deleted:
                continue
            # A repost is the reposted post with a reason naming who reposted it ([AUTHOR]).
            entry = _feed_post(done.subject, network)
            entry["reason"] = {
                "$type": REASON_REPOST,
                "by": profile(done.author),
                "indexedAt": wire_time(done.at),
            }
            items.append((done.at, done.uri, entry))
    items.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return items


def thread_view(post: FakePost, network: Network, depth: int, parent_height: int) -> dict[str, Any]:
    """app.bsky.feed.defs#threadViewPost: the post, its parents and replies to `depth`."""
    node: dict[str, Any] = {"$type": THREAD_VIEW, "post": post_view(post, network)}
    if post.reply is not None and parent_height > 0:
        node["parent"] = _parent(post.reply[1], network, parent_height)
    if depth > 0:  # at the depth limit `replies` is left out, not empty ([THREAD])
        node["replies"] = [
            thread_view(reply, network, depth - 1, 0) for reply in network.replies_to(post)
        ]
    return node


def _shown(post: FakePost, did: str, feed_filter: str) -> bool:
    """Whether the author's own post is in its feed under `feed_filter` ([AUTHOR])."""
    if feed_filter == "posts_no_replies":
        return post.reply is None
    if feed_filter == "posts_with_media":
        return False  # the fake's posts carry no images or video
    if feed_filter == "posts_and_author_threads":
        return post.reply is None or post.reply[0].author.did == did
    return True  # posts_with_replies: every post, replies too


def _feed_post(post: FakePost, network: Network) -> dict[str, Any]:
    """app.bsky.feed.defs#feedViewPost: the post and, for a reply, its root and parent."""
    entry: dict[str, Any] = {"post": post_view(post, network)}
    if post.reply is not None:
        root, parent = post.reply
        # replyRef: root and parent are a postView, or a notFoundPost once deleted ([AUTHOR]).
        entry["reply"] = {"root": _ref_view(root, network), "parent": _ref_view(parent, network)}
    return entry


def _ref_view(post: FakePost, network: Network) -> dict[str, Any]:
    if post.deleted:
        return {"$type": NOT_FOUND_POST, "uri": post.uri, "notFound": True}
    return {"$type": POST_VIEW, **post_view(post, network)}


def _parent(post: FakePost, network: Network, height: int) -> dict[str, Any]:
    if post.deleted:
        return {"$type": NOT_FOUND_POST, "uri": post.uri, "notFound": True}
    node: dict[str, Any] = {"$type": THREAD_VIEW, "post": post_view(post, network)}
    if post.reply is not None and height > 1:
        node["parent"] = _parent(post.reply[1], network, height - 1)
    return node


def _reason(post: FakePost, did: str) -> tuple[str | None, str | None]:
    # One notification per post, a reply before a quote before a mention.
    if post.reply is not None and post.reply[1].author.did == did:
        return "reply", post.reply[1].uri
    if post.quote is not None and post.quote.author.did == did:
        return "quote", post.quote.uri
    mentioned = any(
        feature.get("did") == did for facet in post.facets for feature in facet["features"]
    )
    return ("mention", None) if mentioned else (None, None)


def _interaction(done: Interaction) -> dict[str, Any]:
    collection = {"like": "app.bsky.feed.like", "repost": "app.bsky.feed.repost"}.get(
        done.reason, "app.bsky.graph.follow"
    )
    record: dict[str, Any] = {"$type": collection, "createdAt": wire_time(done.at)}
    if done.subject is not None:
        record["subject"] = done.subject.ref()
    else:
        record["subject"] = done.target.did
    entry: dict[str, Any] = {
        "uri": done.uri,
        "cid": cid_of(done.uri, done.reason),
        "author": profile(done.author),
        "reason": done.reason,
        "record": record,
        "isRead": False,
        "indexedAt": wire_time(done.at),
        "labels": [],
    }
    if done.subject is not None:
        entry["reasonSubject"] = done.subject.uri
    return entry


def _matches(post: FakePost, term: str) -> bool:
    if term.startswith("#"):
        tags = {f["tag"].lower() for f in _features(post, "tag")} | {t.lower() for t in post.tags}
        return term[1:] in tags
    return term in post.text.lower()


def _features(post: FakePost, kind: str) -> list[dict[str, Any]]:
    wanted = f"app.bsky.richtext.facet#{kind}"
    return [f for facet in post.facets for f in facet["features"] if f.get("$type") == wanted]


def _count(network: Network, reason: str, post: FakePost) -> int:
    return sum(1 for i in network.interactions if i.reason == reason and i.subject is post)
