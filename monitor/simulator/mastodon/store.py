"""The server's accounts, statuses and notifications, the methods tests script them with."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from monitor.clock import Clock, SystemClock
from monitor.simulator import base
from monitor.simulator.mastodon.model import (
    Account,
    Notification,
    RecordedRequest,
    Status,
    snowflake,
    written_mentions,
    written_tags,
)

# Scopes a token of the brand's account is given in the docs' example (read:statuses for the
# statuses and timelines, read:notifications for the mentions).
DEFAULT_SCOPES = frozenset({"read:statuses", "read:notifications"})


class MastodonStore:
    """One Mastodon server's content and its one access token, as a test sets them up."""

    def __init__(
        self,
        *,
        owner: str,
        access_token: str,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        clock: Clock | None = None,
        rate_limit: int = 300,
        rate_period: int = 300,
    ) -> None:
        super().__init__()
        self.clock: Clock = clock or SystemClock()
        self.access_token = access_token
        self.scopes = set(scopes)
        self.token_revoked = False
        # [RATE] 300 requests per 5 minutes, per token (per IP address without one).
        self.rate_limit = rate_limit
        self.rate_period = rate_period
        # Requests per (token or "ip", window number): Rack::Attack's counters.
        self.rate_windows: dict[tuple[str, int], int] = {}
        self.requests: list[RecordedRequest] = []
        self._accounts: dict[str, Account] = {}
        self._statuses: dict[str, Status] = {}
        self._notifications: list[Notification] = []
        self._sequence = 0
        self._next_account = 109_000_000_000_000_001
        self._next_notification = 1_000
        self.owner = self.add_account(owner)

    # --- scripting ----------------------------------------------------------------------------

    def add_account(
        self, acct: str, *, display_name: str = "", created_at: datetime | None = None
    ) -> Account:
        """An account: "user" is local, "user@domain" lives on another server."""
        username, _, domain = acct.lstrip("@").partition("@")
        account = Account(
            id=str(self._next_account),
            username=username,
            domain=domain or None,
            display_name=display_name,
            created_at=created_at or self.clock.now(),
        )
        self._next_account += 1
        self._accounts[account.acct.lower()] = account
        return account

    def account(self, acct: str) -> Account:
        """A known account by its acct, created (remote or local) if new."""
        found = self._accounts.get(acct.lstrip("@").lower())
        return found if found is not None else self.add_account(acct)

    def post(
        self,
        author: str,
        text: str,
        *,
        at: datetime | None = None,
        reply_to: str | None = None,
        visibility: str = "public",
        spoiler_text: str = "",
        mention_parent: bool = True,
    ) -> str:
        """A new status; a reply starts with "@author " as clients write it (unless told not)."""
        account = self.account(author)
        parent = base.find(self._statuses, reply_to, "status") if reply_to else None
        if parent is not None and mention_parent and parent.account is not account:
            handle = f"@{parent.account.acct}"
            if handle.lower() not in text.lower():
                text = f"{handle} {text}"
        mentions: list[Account] = []
        for name in written_mentions(text):
            mentioned = self._accounts.get(name.lower())
            if mentioned is not None and mentioned not in mentions:
                mentions.append(mentioned)
        status = Status(
            id=self._new_id(at),
            account=account,
            text=text,
            created_at=at or self.clock.now(),
            visibility=visibility,
            spoiler_text=spoiler_text,
            in_reply_to=parent,
            mentions=tuple(mentions),
            tags=written_tags(text),
        )
        self._statuses[status.id] = status
        self._published("update", status)
        for mentioned in mentions:
            # [NOTE] NotifyService: local accounts are notified of mentions, not of their own.
            if mentioned.domain is None and mentioned is not account:
                self._notify("mention", mentioned, account, status, status.created_at)
        return status.id

    def boost(self, booster: str, status_id: str, *, at: datetime | None = None) -> str:
        """[BOOST] A boost: a status of its own, with the original in `reblog`."""
        original = base.find(self._statuses, status_id, "status")
        account = self.account(booster)
        boost = Status(
            id=self._new_id(at),
            account=account,
            text="",
            created_at=at or self.clock.now(),
            reblog_of=original,
        )
        self._statuses[boost.id] = boost
        if original.account.domain is None and original.account is not account:
            self._notify("reblog", original.account, account, original, boost.created_at)
        return boost.id

    def edit(self, status_id: str, text: str, *, at: datetime | None = None) -> None:
        """[EDIT] The author edits: new text and tags, same id and created_at, edited_at set."""
        status = base.find(self._statuses, status_id, "status")
        status.text = text
        status.tags = written_tags(text)
        status.edited_at = at or self.clock.now()
        self._published("status.update", status)

    def delete(self, status_id: str) -> None:
        """[DELETE] Gone: 404 on reads, out of timelines, its notifications and boosts too."""
        status = base.find(self._statuses, status_id, "status")
        status.deleted = True
        for other in self._statuses.values():
            if other.reblog_of is status:
                other.deleted = True
        self._notifications = [n for n in self._notifications if n.status is not status]
        self._published("delete", status)

    # --- reads (the server's handlers use these) ----------------------------------------------

    def find_account(self, acct: str) -> Account | None:
        """[LOOKUP] An account by "user" or "user@domain"."""
        return self._accounts.get(acct.lstrip("@").lower())

    def account_by_id(self, account_id: str) -> Account | None:
        """An account by its id."""
        return next((a for a in self._accounts.values() if a.id == account_id), None)

    def status(self, status_id: str, viewer: Account | None) -> Status | None:
        """A status the viewer may see, None if deleted, unknown or private to them."""
        status = self._statuses.get(status_id)
        if status is None or status.deleted or not _visible(status, viewer):
            return None
        return status

    def tag_timeline(self, tag: str) -> list[Status]:
        """[TAG] Public statuses carrying the tag (never boosts), newest first."""
        key = tag.lower()
        found = [
            s
            for s in self._statuses.values()
            if not s.deleted
            and s.reblog_of is None
            and s.visibility == "public"
            and key in (t.lower() for t in s.tags)
        ]
        return _newest_first(found)

    def account_statuses(
        self, account: Account, viewer: Account | None, *, replies: bool, reblogs: bool
    ) -> list[Status]:
        """[ACCOUNT_STATUSES] What the account posted and boosted, newest first."""
        found = [
            s
            for s in self._statuses.values()
            if s.account is account
            and not s.deleted
            and (reblogs or s.reblog_of is None)
            and (replies or s.in_reply_to is None)
            and _visible(s, viewer)
            and (s.reblog_of is None or not s.reblog_of.deleted)
        ]
        return _newest_first(found)

    def notifications(self, types: set[str], exclude: set[str]) -> list[Notification]:
        """[NOTE] The token owner's notifications, newest first."""
        found = [
            n
            for n in self._notifications
            if n.to is self.owner
            and (not types or n.type in types)
            and n.type not in exclude
            and not n.status.deleted
        ]
        return sorted(found, key=lambda n: int(n.id), reverse=True)

    def context(self, status: Status, viewer: Account | None) -> tuple[list[Status], list[Status]]:
        """[CONTEXT] Ancestors (oldest first) and descendants (depth first) the viewer sees."""
        ancestors: list[Status] = []
        parent = status.in_reply_to
        while parent is not None and not parent.deleted and _visible(parent, viewer):
            ancestors.append(parent)
            parent = parent.in_reply_to
        ancestors.reverse()
        descendants: list[Status] = []
        stack = self._children(status, viewer)
        while stack:
            child = stack.pop(0)
            descendants.append(child)
            stack[0:0] = self._children(child, viewer)
        return ancestors, descendants

    # --- helpers ------------------------------------------------------------------------------

    def _children(self, status: Status, viewer: Account | None) -> list[Status]:
        children = [
            s
            for s in self._statuses.values()
            if s.in_reply_to is status and not s.deleted and _visible(s, viewer)
        ]
        return sorted(children, key=lambda s: int(s.id))

    def _new_id(self, at: datetime | None) -> str:
        self._sequence += 1
        return str(snowflake(at or self.clock.now(), self._sequence))

    def _notify(self, kind: str, to: Account, by: Account, status: Status, at: datetime) -> None:
        notification = Notification(
            id=str(self._next_notification),
            type=kind,
            created_at=at,
            to=to,
            account=by,
            status=status,
        )
        self._notifications.append(notification)
        self._next_notification += 1
        self._published("notification", notification)

    def _published(self, event: str, subject: Status | Notification) -> None:
        """A change the streaming API would announce (the server streams it; here: nothing)."""


def _visible(status: Status, viewer: Account | None) -> bool:
    """[VISIBILITY] Public and unlisted to all; private and direct to the author and mentioned."""
    if status.visibility in ("public", "unlisted"):
        return True
    return viewer is not None and (viewer is status.account or viewer in status.mentions)


def _newest_first(statuses: list[Status]) -> list[Status]:
    return sorted(statuses, key=lambda s: int(s.id), reverse=True)
