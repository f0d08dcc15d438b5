"""The fake's Pages, posts and comments, and the methods tests script them with."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from monitor.simulator.base import find
from monitor.simulator.graph_api.errors import GraphError
from monitor.simulator.graph_api.model import RecordedRequest, _Node, _Page, _unix


class GraphStore:
    """Pages, posts and comments on one access token; what a test adds, edits or breaks."""

    def __init__(
        self,
        page_id: str | None = None,
        page_name: str | None = None,
        access_token: str = "fake-page-token",
        version: str = "v26.0",
        *,
        username: str | None = None,
        first_number: int = 1_000_001,
    ) -> None:
        super().__init__()
        self.access_token = access_token
        self.version = version
        # Usage headers sent on every response when set (percentages, [HDRS] / [BUC] / [E32]).
        self.app_usage: dict[str, int] | None = None
        self.business_usage: dict[str, list[dict[str, Any]]] | None = None
        self.page_usage: dict[str, int] | None = None
        # The real feed often ends with a `next` link that leads to an empty page.
        self.trailing_empty_page = False
        # What /debug_token says about `access_token` ([DEBUG]); 0 means "never".
        self.app_id = "1357924680135792"
        self.app_name = "webcare-monitor"
        self.token_expires_at = 0
        self.data_access_expires_at = 0
        self.token_issued_at = 1_700_000_000
        self.token_valid = True
        self.token_scopes = ["pages_read_engagement", "pages_read_user_content", "pages_show_list"]
        # The app's secret ([PROOF]): a given appsecret_proof is checked against it, and with
        # `require_app_secret` a call without one is refused.
        self.app_secret: str | None = None
        self.require_app_secret = False
        # A batch POST refused as a whole with this error (an app or endpoint that does not
        # take batches), so a client's per-object fallback can be tested.
        self.refuse_batches: GraphError | None = None
        # Every HTTP request received, and every Graph call (plain GETs and batch sub-requests).
        self.requests: list[RecordedRequest] = []
        self.calls: list[RecordedRequest] = []
        self.http_requests = 0
        # Calls as Facebook's rate limiting counts them: each batch sub-request and each id of
        # an `ids=` read is one call ([BATCH], [IDS]).
        self.graph_calls = 0
        self._pages: dict[str, _Page] = {}
        self._usernames: dict[str, str] = {}
        self._nodes: dict[str, _Node] = {}
        self._dropped: dict[str, tuple[str, ...]] = {}  # break_object()
        self._next_number = first_number
        if page_id is not None:
            self.add_page(page_id, page_name or page_id, username=username)

    # --- scripting ------------------------------------------------------------------------

    def add_page(self, page_id: str, name: str, *, username: str | None = None) -> str:
        """Serve one more Page (on the same token); `username` is its vanity name."""
        if page_id in self._pages or page_id in self._usernames:
            raise ValueError(f"page {page_id!r} exists already")
        self._pages[page_id] = _Page(id=page_id, name=name, username=username)
        if username is not None:
            # Accepted wherever the numeric id is, as on the real API.
            self._usernames[username] = page_id
        return page_id

    @property
    def page_ids(self) -> list[str]:
        """Every page served, in the order they were added."""
        return list(self._pages)

    @property
    def page_id(self) -> str:
        """The first page's id: the page `add_post` uses by default."""
        return self._default_page().id

    @property
    def page_name(self) -> str:
        """The first page's name."""
        return self._default_page().name

    @property
    def username(self) -> str | None:
        """The first page's vanity name."""
        return self._default_page().username

    def add_post(
        self,
        *,
        created_time: datetime,
        message: str,
        author: tuple[str, str] | None = None,
        anonymous: bool = False,
        page_id: str | None = None,
    ) -> str:
        """Publish a post on a page (default: the first); author (id, name), None = the page."""
        page = self._pages[page_id] if page_id is not None else self._default_page()
        number = self._take_number()
        post_id = f"{page.id}_{number}"
        created = _unix(created_time)
        self._nodes[post_id] = _Node(
            id=post_id,
            page_id=page.id,
            number=number,
            is_post=True,
            created=created,
            updated=created,
            message=message,
            author=None if anonymous else (author or (page.id, page.name)),
            post_id=post_id,
            parent_id=None,
        )
        return post_id

    def add_comment(
        self,
        *,
        post_id: str,
        created_time: datetime,
        message: str,
        author: tuple[str, str] | None = None,
        parent_id: str | None = None,
        anonymous: bool = False,
    ) -> str:
        """Comment on a post (or reply to `parent_id`); author None = the page replying."""
        post = self._nodes.get(post_id)
        if post is None or not post.is_post:
            raise KeyError(f"no post {post_id!r}")
        if parent_id is not None:
            parent = self._nodes.get(parent_id)
            if parent is None or parent.is_post or parent.post_id != post_id:
                raise KeyError(f"no comment {parent_id!r} on post {post_id!r}")
        page = self._pages[post.page_id]
        number = self._take_number()
        comment_id = f"{post.number}_{number}"
        created = _unix(created_time)
        self._nodes[comment_id] = _Node(
            id=comment_id,
            page_id=page.id,
            number=number,
            is_post=False,
            created=created,
            updated=created,
            message=message,
            author=None if anonymous else (author or (page.id, page.name)),
            post_id=post_id,
            parent_id=parent_id or post_id,
        )
        return comment_id

    def edit(self, object_id: str, message: str) -> None:
        """Change the text of a post or comment."""
        node = self._node(object_id)
        self._nodes[object_id] = replace(node, message=message)

    def break_object(self, object_id: str, *, drop: tuple[str, ...] = ("created_time",)) -> None:
        """Serve an object without some of its fields, as a half-migrated object comes."""
        # A test mode: one unusable object among readable ones.
        self._node(object_id)
        self._dropped[object_id] = drop

    def hide(self, object_id: str) -> None:
        """Hide a post or comment (still returned, with `is_hidden: true`)."""
        self._nodes[object_id] = replace(self._node(object_id), hidden=True)

    def unhide(self, object_id: str) -> None:
        """Make a hidden post or comment visible again."""
        self._nodes[object_id] = replace(self._node(object_id), hidden=False)

    def delete(self, object_id: str) -> None:
        """Delete a post (with its comments) or a comment (with its replies)."""
        self._node(object_id)
        doomed = {object_id}
        changed = True
        while changed:
            changed = False
            for node in self._nodes.values():
                if node.id not in doomed and (node.parent_id in doomed or node.post_id in doomed):
                    doomed.add(node.id)
                    changed = True
        for node_id in doomed:
            del self._nodes[node_id]

    def exists(self, object_id: str) -> bool:
        """Whether a post or comment exists (not deleted)."""
        return object_id in self._nodes

    # --- lookups --------------------------------------------------------------------------

    def _take_number(self) -> int:
        number = self._next_number
        self._next_number += 1
        return number

    def _default_page(self) -> _Page:
        if not self._pages:
            raise RuntimeError("FakeGraphApi serves no page yet; call add_page() first")
        return next(iter(self._pages.values()))

    def _node(self, object_id: str) -> _Node:
        return find(self._nodes, object_id, "post or comment")
