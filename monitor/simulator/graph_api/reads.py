"""Answers to Graph calls: objects, feeds, comment edges, multi-id reads, debug_token."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from monitor.simulator.graph_api.errors import (
    _PROOF_INVALID,
    _PROOF_REQUIRED,
    _ROOT_IDS_REFUSED,
    GraphError,
    _GraphFailure,
    _unknown_path_error,
)
from monitor.simulator.graph_api.fields import FieldSpec, _default_spec, _Field, _fields, _project
from monitor.simulator.graph_api.model import (
    _VERSION,
    IDS_LIMIT,
    _Call,
    _choice,
    _comes_after,
    _decode_mark,
    _encode_mark,
    _int_param,
    _limit,
    _link,
    _Node,
    _split_ids,
    _version_number,
    _wire_time,
)
from monitor.simulator.graph_api.store import GraphStore


class GraphReads(GraphStore):
    """One Graph call (HTTP or batch sub-request) answered from the store, or a _GraphFailure."""

    def _dispatch(self, call: _Call) -> dict[str, Any]:
        """Answer one call (HTTP or batch sub-request) with its body, or raise _GraphFailure."""
        self._check_token(call.token)
        self._check_proof(call.token, call.proof)
        if not _VERSION.match(call.version) or len(call.segments) > 2:
            raise _unknown_path_error(call.path)
        if not call.segments:
            if _version_number(call.version) >= (26, 0):
                raise _GraphFailure(_ROOT_IDS_REFUSED)  # [V26IDS]
            return self._read_ids(call)
        object_id = self._usernames.get(call.segments[0], call.segments[0])
        if len(call.segments) == 1:
            if object_id == "debug_token":
                return self._debug_token(call)
            return self._read_node(call, object_id)
        edge = call.segments[1]
        if edge == "feed":
            return self._feed(call, object_id)
        if edge == "comments":
            return self._comments(call, object_id)
        raise self._no_such_field(object_id, edge)

    def _check_proof(self, token: str | None, proof: str | None) -> None:
        """[PROOF]: a wrong proof always fails; a missing one when the app requires it."""
        if self.app_secret is None or token is None:
            return
        if proof is None:
            if self.require_app_secret:
                raise _GraphFailure(_PROOF_REQUIRED)
            return
        expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(proof, expected):
            raise _GraphFailure(_PROOF_INVALID)

    def _check_token(self, token: str | None) -> None:
        if not token:
            raise _GraphFailure(GraphError(code=104))  # [E104]
        if token != self.access_token:
            raise _GraphFailure(GraphError(code=190))  # [E190]

    # --- reads ----------------------------------------------------------------------------

    def _read_ids(self, call: _Call) -> dict[str, Any]:
        """GET /?ids=A,B: each object under the id it was asked by ([IDS])."""
        ids = _split_ids(call.query)
        if not ids:
            raise _GraphFailure(GraphError(code=100, message="(#100) Missing or invalid ids"))
        if len(ids) > IDS_LIMIT:
            raise _GraphFailure(
                GraphError(
                    code=100,
                    message=f"(#100) Too many IDs. Maximum: {IDS_LIMIT}. Provided: {len(ids)}.",
                )
            )
        missing = [
            object_id
            for object_id in ids
            if self._usernames.get(object_id, object_id) not in self._pages
            and object_id not in self._nodes
        ]
        if missing:
            # One missing id fails the whole read.
            text = f"(#100) Some of the aliases you requested do not exist: {','.join(missing)}"
            raise _GraphFailure(GraphError(code=100, message=text))
        return {
            object_id: self._read_node(call, self._usernames.get(object_id, object_id))
            for object_id in ids
        }

    def _debug_token(self, call: _Call) -> dict[str, Any]:
        """GET /debug_token?input_token=: what the token is and when it stops working."""
        input_token = call.query.get("input_token")
        if not input_token:
            message = "(#100) The parameter input_token is required"
            raise _GraphFailure(GraphError(code=100, message=message))
        if input_token != self.access_token:
            # [DEBUG]: an unknown token is answered inside `data`, not as an error.
            error = {"code": 190, "message": "Invalid OAuth access token."}
            return {"data": {"error": error, "is_valid": False, "scopes": []}}
        data: dict[str, Any] = {
            "app_id": self.app_id,
            "type": "PAGE",
            "application": self.app_name,
            "data_access_expires_at": self.data_access_expires_at,
            "expires_at": self.token_expires_at,
            "is_valid": self.token_valid,
            "issued_at": self.token_issued_at,
            "scopes": list(self.token_scopes),
            "user_id": "10000000000001",
        }
        if self._pages:
            data["profile_id"] = self.page_id
        return {"data": data}

    def _feed(self, call: _Call, object_id: str) -> dict[str, Any]:
        if object_id not in self._pages:
            if object_id in self._nodes:
                raise self._no_such_field(object_id, "feed")
            raise _GraphFailure(GraphError(code=100, subcode=33), object_id)
        query = call.query
        fields = _fields(query, "PagePost")
        limit = _limit(query)
        since, until = _int_param(query, "since"), _int_param(query, "until")
        # [FEED] newest first, filtered on the post's creation time.
        candidates = sorted(
            (
                node
                for node in self._nodes.values()
                if node.is_post
                and node.page_id == object_id
                and (since is None or node.created >= since)
                and (until is None or node.created <= until)
            ),
            key=lambda node: node.key,
            reverse=True,
        )
        token = query.get("__paging_token")
        backwards = "__previous" in query
        if token is None:
            page = candidates[:limit]
        else:
            mark = _decode_mark(token, prefix="enc_")
            if backwards:
                page = [node for node in candidates if node.key > mark][-limit:]
            else:
                page = [node for node in candidates if node.key < mark][:limit]
        body: dict[str, Any] = {
            "data": [self._render(call, node, fields, "PagePost") for node in page]
        }
        if not page:
            return body
        first, last = page[0], page[-1]
        paging: dict[str, str] = {
            "previous": _link(
                call,
                drop=("until",),
                set_={
                    "since": str(first.created),
                    "__paging_token": _encode_mark(first, prefix="enc_"),
                    "__previous": "1",
                },
            )
        }
        if self.trailing_empty_page or any(node.key < last.key for node in candidates):
            paging["next"] = _link(
                call,
                # Our own `since` from a previous-page link would cut off older posts.
                drop=("__previous", "since") if backwards else ("__previous",),
                set_={
                    "until": str(last.created),
                    "__paging_token": _encode_mark(last, prefix="enc_"),
                },
            )
        body["paging"] = paging
        return body

    def _read_node(self, call: _Call, object_id: str) -> dict[str, Any]:
        """GET /{id}: a Page (id, name) or one post or comment."""
        page = self._pages.get(object_id)
        if page is not None:
            full = {"id": page.id, "name": page.name}
            return _project(full, _fields(call.query, "Page"), "Page")
        node = self._nodes.get(object_id)
        if node is None:
            raise _GraphFailure(GraphError(code=100, subcode=33), object_id)  # [E100]
        node_type = "PagePost" if node.is_post else "Comment"
        return self._render(call, node, _fields(call.query, node_type), node_type)

    def _comments(self, call: _Call, object_id: str) -> dict[str, Any]:
        node = self._nodes.get(object_id)
        if node is None:
            if object_id in self._pages:
                raise self._no_such_field(object_id, "comments")
            raise _GraphFailure(GraphError(code=100, subcode=33), object_id)  # [E100]
        query = call.query
        fields = _fields(query, "Comment")
        limit = _limit(query)
        stream = _choice(query, "filter", ("toplevel", "stream")) == "stream"  # [EDGE]
        order = _choice(query, "order", ("chronological", "reverse_chronological"))
        items = self._comment_list(node, stream=stream, order=order)
        after, before = query.get("after"), query.get("before")
        if after is not None:
            mark = _decode_mark(after)
            page = [item for item in items if _comes_after(item.key, mark, order)][:limit]
        elif before is not None:
            mark = _decode_mark(before)
            page = [item for item in items if _comes_after(mark, item.key, order)][-limit:]
        else:
            page = items[:limit]
        body: dict[str, Any] = {
            "data": [self._render(call, item, fields, "Comment") for item in page]
        }
        if page:
            # [CURSOR]: cursors always; `next`/`previous` only when more data exists that way.
            first, last = page[0], page[-1]
            paging: dict[str, Any] = {
                "cursors": {"before": _encode_mark(first), "after": _encode_mark(last)}
            }
            if items.index(first) > 0:
                paging["previous"] = _link(
                    call, drop=("after",), set_={"before": _encode_mark(first)}
                )
            if items.index(last) < len(items) - 1:
                paging["next"] = _link(call, drop=("before",), set_={"after": _encode_mark(last)})
            body["paging"] = paging
        if query.get("summary") in ("true", "1"):
            body["summary"] = {"order": order, "total_count": len(items), "can_comment": True}
        return body

    def _expand_comments(self, call: _Call, post: _Node, request: _Field) -> dict[str, Any] | None:
        """The `comments` edge expanded inside a post ([FEED], [NESTED]); None when empty."""
        args = request.args
        fields = request.nested if request.nested is not None else _default_spec("Comment")
        limit = _limit(args)
        stream = _choice(args, "filter", ("toplevel", "stream")) == "stream"
        order = _choice(args, "order", ("chronological", "reverse_chronological"))
        items = self._comment_list(post, stream=stream, order=order)
        if not items:
            return None
        page = items[:limit]
        edge: dict[str, Any] = {
            "data": [self._render(call, item, fields, "Comment") for item in page]
        }
        paging: dict[str, Any] = {
            "cursors": {"before": _encode_mark(page[0]), "after": _encode_mark(page[-1])}
        }
        if len(items) > limit:
            # [NESTED]: the link carries limit and cursor only (and a query-string token, as
            # [FEED] links do), so whoever follows it must re-state filter, order and fields.
            query: dict[str, str] = {}
            if "access_token" in call.query:
                query["access_token"] = call.query["access_token"]
            query.update(limit=str(limit), after=_encode_mark(page[-1]))
            link = call.url.with_path(f"/{call.version}/{post.id}/comments").with_query(query)
            paging["next"] = str(link)
        edge["paging"] = paging
        if args.get("summary") in ("true", "1"):
            edge["summary"] = {"order": order, "total_count": len(items), "can_comment": True}
        return edge

    def _comment_list(self, node: _Node, *, stream: bool, order: str) -> list[_Node]:
        members = [
            other
            for other in self._nodes.values()
            if not other.is_post and self._belongs(other, node, stream=stream)
        ]
        return sorted(members, key=lambda other: other.key, reverse=order != "chronological")

    def _belongs(self, comment: _Node, node: _Node, *, stream: bool) -> bool:
        """Whether `comment` is listed on `node`'s comments edge."""
        if not stream:
            return comment.parent_id == node.id
        if node.is_post:
            return comment.post_id == node.id
        parent_id = comment.parent_id
        while parent_id is not None and parent_id != comment.post_id:
            if parent_id == node.id:
                return True
            parent = self._nodes.get(parent_id)
            parent_id = parent.parent_id if parent is not None else None
        return False

    def _render(
        self, call: _Call, node: _Node, fields: FieldSpec, node_type: str
    ) -> dict[str, Any]:
        out = _project(self._full(node, shallow=False), fields, node_type)
        if "comment_count" in fields and not node.is_post:
            out["comment_count"] = sum(
                1 for other in self._nodes.values() if other.parent_id == node.id
            )
        comments = fields.get("comments")
        if comments is not None and node.is_post:
            edge = self._expand_comments(call, node, comments)
            if edge is not None:
                out["comments"] = edge
        return out

    def _full(self, node: _Node, *, shallow: bool) -> dict[str, Any]:
        """Every plain field the fake knows for a node; fields without a value are left out."""
        full: dict[str, Any] = {
            "id": node.id,
            "created_time": _wire_time(node.created),
            "is_hidden": node.hidden,
        }
        # The real API leaves out empty fields, e.g. `message` of a photo-only post.
        if node.message or not node.is_post:
            full["message"] = node.message
        if node.author is not None:
            full["from"] = {"name": node.author[1], "id": node.author[0]}
        if node.is_post:
            full["updated_time"] = _wire_time(node.updated)
            full["permalink_url"] = f"https://www.facebook.com/{node.page_id}/posts/{node.number}"
            for name in self._dropped.get(node.id, ()):
                full.pop(name, None)
            return full
        post = self._nodes.get(node.post_id)
        post_number = post.number if post is not None else 0
        permalink = f"https://www.facebook.com/{node.page_id}/posts/{post_number}?comment_id="
        parent = self._nodes.get(node.parent_id or "")
        if parent is not None and not parent.is_post:
            permalink += f"{parent.number}&reply_comment_id={node.number}"
            if not shallow:
                full["parent"] = self._full(parent, shallow=True)
        else:
            permalink += str(node.number)
        full["permalink_url"] = permalink
        full["like_count"] = 0
        for name in self._dropped.get(node.id, ()):
            full.pop(name, None)
        return full

    def _no_such_field(self, object_id: str, name: str) -> _GraphFailure:
        node = self._nodes.get(object_id)
        node_type = "Page" if node is None else "PagePost" if node.is_post else "Comment"
        return _GraphFailure(
            GraphError(
                code=100,
                message=f"(#100) Tried accessing nonexisting field ({name}) on node type"
                f" ({node_type})",
            )
        )
