"""The fake Graph API's Instagram part: a professional account's media, comments and replies.

Sources of each behaviour, cited by tag next to the code:
[MEDIA]  IG User Media reference (developers.facebook.com/docs/instagram-platform/instagram-
         graph-api/reference/ig-user/media): GET /{ig-user-id}/media, newest first, cursor
         pagination (`paging.cursors.{before,after}`, `next` only while more exist), default
         field `id`; media fields `caption, timestamp, permalink, comments_count`; `since` /
         `until` time-based filters.
[COMM]   IG Media Comments reference (.../reference/ig-media/comments): example response
         `{"data": [{"timestamp": "2017-08-31T18:10:30+0000", "text": "I love this!", "id":
         "17873440459141021"}, ...]}` (default fields timestamp, text, id; oldest first as in
         the example); IG Comment fields `from{id,username}, hidden, id, like_count, media,
         parent_id, replies, text, timestamp, username`.
[REPL]   IG Comment Replies reference (.../reference/ig-comment/replies): GET
         /{ig-comment-id}/replies, same fields; `replies{...}` expands inside a comment, and
         a nested edge's `next` carries limit and cursor only (as the Page fake's [NESTED]).
[PERM]   Permissions tables of those references: `instagram_basic` to read media,
         `instagram_manage_comments` to read comments (and their `username`, required since
         2024-08-27, "Comment Moderation" guide); without one Graph answers code 10 "(#10)
         Application does not have permission for this action" (the Page fake's wording).
[GONE]   A deleted media or comment vanishes from its edges; reading it (or its edges) gives
         HTTP 400 code 100 subcode 33 "Unsupported get request. Object with ID ... does not
         exist" (the Page fake's [E100]).
[HOOK]   Webhooks reference, object `instagram`, field `comments`: `{"object": "instagram",
         "entry": [{"id": IG_USER_ID, "time": UNIX, "changes": [{"field": "comments", "value":
         {"from": {"id", "username"}, "media": {"id", "media_product_type"}, "id", "parent_id"
         (replies only), "text"}}]}]}` (no timestamp); field `mentions`: value `{"media_id",
         "comment_id"}` (Instagram "Webhooks" guide, mentions example). Signed with
         X-Hub-Signature-256 like the Page's.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from monitor.simulator.graph_api.errors import GraphError, _GraphFailure, _invalid_parameter
from monitor.simulator.graph_api.fields import FieldSpec, _Field, _parse_fields
from monitor.simulator.graph_api.model import _Call, _int_param, _limit, _link, _unix, _wire_time
from monitor.simulator.graph_api.reads import GraphReads

NO_PERMISSION = GraphError(code=10)  # [PERM]
GONE = GraphError(code=100, subcode=33)  # [GONE]
_MEDIA_FIELDS = frozenset(
    {"id", "caption", "timestamp", "permalink", "comments_count", "like_count", "media_type"}
)
_COMMENT_FIELDS = frozenset(
    {"id", "text", "timestamp", "username", "from", "hidden", "like_count", "media", "parent_id"}
)
_REPLIES_PAGE = 25  # nested replies shown inside a comment before `next`


@dataclass(frozen=True, kw_only=True)
class _IgObject:
    """A media (parent None, media_id its own id) or a comment / reply."""

    id: str
    number: int
    created: int
    text: str
    owner: str  # the IG user id whose media this is (or is on)
    media_id: str
    parent_id: str | None = None  # replies: the comment replied to
    author: tuple[str, str] | None = None  # (IGSID, username); None: the account itself
    hidden: bool = False

    @property
    def key(self) -> tuple[int, int]:
        """Chronological sort key."""
        return (self.created, self.number)


class InstagramReads(GraphReads):
    """Instagram accounts, media, comments and replies, and the scripting methods for them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ig_scopes = {"instagram_basic", "instagram_manage_comments"}
        self._ig_accounts: dict[str, str] = {}  # IG user id -> username
        self._ig: dict[str, _IgObject] = {}
        self._ig_gone: set[str] = set()

    # --- scripting ------------------------------------------------------------------------

    def add_ig_account(self, ig_user_id: str, username: str) -> str:
        """Serve an Instagram professional account (on the same token)."""
        self._ig_accounts[ig_user_id] = username
        return ig_user_id

    def add_media(self, ig_user_id: str, *, created_time: datetime, caption: str) -> str:
        """The account publishes a media; returns its (17-digit) id."""
        number = self._take_number()
        media_id = str(17_800_000_000_000_000 + number)
        self._ig[media_id] = _IgObject(
            id=media_id,
            number=number,
            created=_unix(created_time),
            text=caption,
            owner=ig_user_id,
            media_id=media_id,
        )
        return media_id

    def add_ig_comment(
        self,
        media_id: str,
        *,
        created_time: datetime,
        text: str,
        author: tuple[str, str] | None = None,
        parent_id: str | None = None,
    ) -> str:
        """A comment (or reply to `parent_id`) by `author` (IGSID, username); None: the account."""
        media = self._ig[media_id]
        if parent_id is not None and self._ig[parent_id].parent_id is not None:
            raise ValueError("Instagram replies are one level deep")
        number = self._take_number()
        comment_id = str(17_900_000_000_000_000 + number)
        self._ig[comment_id] = _IgObject(
            id=comment_id,
            number=number,
            created=_unix(created_time),
            text=text,
            owner=media.owner,
            media_id=media_id,
            parent_id=parent_id,
            author=author,
        )
        return comment_id

    def hide_ig_comment(self, comment_id: str, hidden: bool = True) -> None:
        """The account hides (or unhides) a comment: still listed, with `hidden: true`."""
        self._ig[comment_id] = replace(self._ig[comment_id], hidden=hidden)

    def delete_ig(self, object_id: str) -> None:
        """Delete a media (with its comments) or a comment (with its replies) ([GONE])."""
        doomed = {o.id for o in self._ig.values() if object_id in (o.id, o.media_id, o.parent_id)}
        for gone in doomed:
            del self._ig[gone]
        self._ig_gone |= doomed

    def comment_delivery(self, *comment_ids: str) -> dict[str, Any]:
        """The `comments` webhook delivery for these comments ([HOOK]), one entry per account."""
        entries: dict[str, list[dict[str, Any]]] = {}
        for comment_id in comment_ids:
            comment = self._ig[comment_id]
            author = comment.author or (comment.owner, self._ig_accounts[comment.owner])
            value: dict[str, Any] = {
                "from": {"id": author[0], "username": author[1]},
                "media": {"id": comment.media_id, "media_product_type": "FEED"},
                "id": comment.id,
                "text": comment.text,
            }
            if comment.parent_id is not None:
                value["parent_id"] = comment.parent_id
            entries.setdefault(comment.owner, []).append({"field": "comments", "value": value})
        return _delivery(entries, max(self._ig[c].created for c in comment_ids))

    def mention_delivery(self, ig_user_id: str, media_id: str, comment_id: str) -> dict[str, Any]:
        """The `mentions` webhook delivery: the account was @mentioned in a comment ([HOOK])."""
        value = {"media_id": media_id, "comment_id": comment_id}
        at = self._ig[comment_id].created
        return _delivery({ig_user_id: [{"field": "mentions", "value": value}]}, at)

    # --- reads ----------------------------------------------------------------------------

    def _dispatch(self, call: _Call) -> dict[str, Any]:
        """Instagram objects here; everything else as the Page fake answers it."""
        if not call.segments or len(call.segments) > 2:
            return super()._dispatch(call)
        object_id = call.segments[0]
        if not ({object_id} & (self._ig_accounts.keys() | self._ig.keys() | self._ig_gone)):
            return super()._dispatch(call)
        self._check_token(call.token)
        self._check_proof(call.token, call.proof)
        if object_id in self._ig_gone:
            raise _GraphFailure(GONE, object_id)  # [GONE]
        edge = call.segments[1] if len(call.segments) == 2 else None
        if object_id in self._ig_accounts:
            if edge is None:
                return {"id": object_id, "username": self._ig_accounts[object_id]}
            if edge != "media":
                raise _no_field(edge, "IGUser")
            return self._ig_media_edge(call, object_id)
        node = self._ig[object_id]
        is_media = node.id == node.media_id
        if edge is None:
            spec = _spec(call, _MEDIA_FIELDS if is_media else _COMMENT_FIELDS, is_media)
            return self._ig_render(call, node, spec)
        if edge != ("comments" if is_media else "replies"):
            raise _no_field(edge, "IGMedia" if is_media else "IGComment")
        if "instagram_manage_comments" not in self.ig_scopes:
            raise _GraphFailure(NO_PERMISSION)  # [PERM]
        spec = _spec(call, _COMMENT_FIELDS | {"replies"}, False)
        if is_media:
            listed = [o for o in self._ig.values() if o.media_id == node.id]
            items = sorted(
                (o for o in listed if o.parent_id is None and o.id != o.media_id), key=_key
            )
        else:
            items = sorted((o for o in self._ig.values() if o.parent_id == node.id), key=_key)
        return self._ig_page(call, items, spec)  # [COMM] [REPL], oldest first

    def _ig_media_edge(self, call: _Call, ig_user_id: str) -> dict[str, Any]:
        if "instagram_basic" not in self.ig_scopes:
            raise _GraphFailure(NO_PERMISSION)  # [PERM]
        since, until = _int_param(call.query, "since"), _int_param(call.query, "until")
        media = sorted(
            (
                o
                for o in self._ig.values()
                if o.id == o.media_id
                and o.owner == ig_user_id
                and (since is None or o.created >= since)
                and (until is None or o.created <= until)
            ),
            key=_key,
            reverse=True,
        )
        return self._ig_page(call, media, _spec(call, _MEDIA_FIELDS, True))

    def _ig_page(self, call: _Call, items: list[_IgObject], spec: FieldSpec) -> dict[str, Any]:
        """One page of an edge with cursor paging ([MEDIA], [COMM])."""
        limit = _limit(call.query)
        after = call.query.get("after")
        start = 0
        if after is not None:
            mark = _decode(after)
            start = next((i + 1 for i, o in enumerate(items) if o.key == mark), len(items))
        page = items[start : start + limit]
        body: dict[str, Any] = {"data": [self._ig_render(call, o, spec) for o in page]}
        if page:
            paging: dict[str, Any] = {
                "cursors": {"before": _encode(page[0]), "after": _encode(page[-1])}
            }
            if start + limit < len(items):
                paging["next"] = _link(call, drop=("before",), set_={"after": _encode(page[-1])})
            body["paging"] = paging
        return body

    def _ig_render(self, call: _Call, node: _IgObject, spec: FieldSpec) -> dict[str, Any]:
        is_media = node.id == node.media_id
        full: dict[str, Any] = {"id": node.id, "timestamp": _wire_time(node.created)}
        if is_media:
            full["caption"] = node.text
            full["permalink"] = f"https://www.instagram.com/p/IG{node.number}/"
            full["comments_count"] = sum(
                1 for o in self._ig.values() if o.media_id == node.id and o.id != node.id
            )
            full["like_count"] = 0
            full["media_type"] = "IMAGE"
        else:
            author = node.author or (node.owner, self._ig_accounts[node.owner])
            full.update(
                text=node.text,
                username=author[1],
                hidden=node.hidden,
                like_count=0,
                media={"id": node.media_id},
            )
            full["from"] = {"id": author[0], "username": author[1]}
            if node.parent_id is not None:
                full["parent_id"] = node.parent_id
        out = {name: full[name] for name in spec if name in full}
        out.setdefault("id", node.id)
        replies = spec.get("replies")
        if replies is not None and not is_media and node.parent_id is None:
            out.update(self._ig_nested_replies(call, node, replies))
        return out

    def _ig_nested_replies(self, call: _Call, node: _IgObject, requested: _Field) -> dict[str, Any]:
        """`replies{...}` inside a comment ([REPL]); left out when there are none."""
        items = sorted((o for o in self._ig.values() if o.parent_id == node.id), key=_key)
        if not items:
            return {}
        nested = requested.nested or {"id": _Field(), "text": _Field(), "timestamp": _Field()}
        page = items[:_REPLIES_PAGE]
        edge: dict[str, Any] = {"data": [self._ig_render(call, o, nested) for o in page]}
        if len(items) > _REPLIES_PAGE:
            # Limit and cursor only: whoever follows it must re-state the fields.
            query = {"limit": str(_REPLIES_PAGE), "after": _encode(page[-1])}
            link = call.url.with_path(f"/{call.version}/{node.id}/replies").with_query(query)
            edge["paging"] = {"next": str(link)}
        return {"replies": edge}


def _key(node: _IgObject) -> tuple[int, int]:
    return node.key


def _spec(call: _Call, known: frozenset[str], is_media: bool) -> FieldSpec:
    raw = call.query.get("fields")
    if not raw:
        names = ("id",) if is_media else ("timestamp", "text", "id")  # [MEDIA] [COMM]
        return {name: _Field() for name in names}
    spec, _ = _parse_fields(raw, 0)
    for name in spec:
        if name not in known:
            raise _no_field(name, "IGMedia" if is_media else "IGComment")
    return spec


def _no_field(name: str, node_type: str) -> _GraphFailure:
    message = f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})"
    return _GraphFailure(GraphError(code=100, message=message))


def _encode(node: _IgObject) -> str:
    raw = f"{node.created}:{node.number}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created, number = raw.split(":")
        return int(created), int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise _invalid_parameter() from err


def _delivery(entries: dict[str, list[dict[str, Any]]], at: int) -> dict[str, Any]:
    return {
        "object": "instagram",
        "entry": [
            {"id": ig_user_id, "time": at, "changes": changes}
            for ig_user_id, changes in entries.items()
        ],
    }
