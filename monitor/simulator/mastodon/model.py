"""What the fake Mastodon stores: accounts, statuses, notifications, and their JSON forms."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

# [ID] Mastodon::Snowflake (lib/mastodon/snowflake.rb): the milliseconds since the epoch shifted
# left by 16 bits, a sequence in the low bits; sent as a string.
_SEQUENCE_BITS = 16
# [LIMIT] Api::BaseController#limit_param: the default, and at most twice the default.
STATUSES_LIMIT = 20  # DEFAULT_STATUSES_LIMIT
NOTIFICATIONS_LIMIT = 40  # DEFAULT_NOTIFICATIONS_LIMIT (Mastodon 4.x)
# What a client puts in a post: #tags and @user or @user@domain mentions (Extractor's rules,
# narrowed to what tests write).
_TAG = re.compile(r"(?<![\w/])#(\w+)")
_MENTION = re.compile(r"(?<![\w/])@(\w+(?:@[\w.-]+\w)?)")


class RecordedRequest(NamedTuple):
    """One request the fake received: path, query pairs, fake-clock time, and its answer."""

    path: str
    query: tuple[tuple[str, str], ...]
    at: datetime
    status: int
    token: str | None


def snowflake(at: datetime, sequence: int) -> int:
    """[ID] A status id for a moment: sortable by time, unique by the sequence."""
    millis = int(at.timestamp() * 1000)
    return (millis << _SEQUENCE_BITS) | (sequence & ((1 << _SEQUENCE_BITS) - 1))


def wire_time(at: datetime) -> str:
    """[TIME] Rails' `iso8601(3)` in UTC: "2024-01-08T11:00:00.000Z"."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass(frozen=True, kw_only=True)
class Account:
    """An account as the server knows it; `domain` None for a local one."""

    id: str
    username: str
    domain: str | None = None
    display_name: str = ""
    created_at: datetime

    @property
    def acct(self) -> str:
        """[ACCOUNT] "user" for local accounts, "user@domain" for remote ones."""
        return self.username if self.domain is None else f"{self.username}@{self.domain}"

    def url(self, base: str) -> str:
        """The profile page: on this server, or on the account's own server."""
        home = base if self.domain is None else f"https://{self.domain}"
        return f"{home}/@{self.username}"

    def uri(self, base: str) -> str:
        """The ActivityPub id of the account."""
        home = base if self.domain is None else f"https://{self.domain}"
        return f"{home}/users/{self.username}"

    def to_json(self, base: str) -> dict[str, Any]:
        """[ACCOUNT] REST::AccountSerializer's fields (the ones a client reads)."""
        return {
            "id": self.id,
            "username": self.username,
            "acct": self.acct,
            "display_name": self.display_name or self.username,
            "locked": False,
            "bot": False,
            "discoverable": True,
            "group": False,
            "created_at": wire_time(self.created_at),
            "note": "",
            "url": self.url(base),
            "uri": self.uri(base),
            "avatar": f"{base}/avatars/original/missing.png",
            "avatar_static": f"{base}/avatars/original/missing.png",
            "header": f"{base}/headers/original/missing.png",
            "header_static": f"{base}/headers/original/missing.png",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": 0,
            "last_status_at": None,
            "emojis": [],
            "fields": [],
        }


@dataclass(kw_only=True)
class Status:
    """A status (or a boost of one, `reblog_of` set); mutable: edits change it in place."""

    id: str
    account: Account
    text: str  # what the author typed; the HTML and the tags and mentions come from it
    created_at: datetime
    visibility: str = "public"
    spoiler_text: str = ""
    in_reply_to: Status | None = None
    reblog_of: Status | None = None
    mentions: tuple[Account, ...] = ()
    edited_at: datetime | None = None
    deleted: bool = False
    tags: tuple[str, ...] = field(default=())

    def url(self, base: str) -> str:
        """[STATUS] The web page of the status (on the author's server for remote ones)."""
        return f"{self.account.url(base)}/{self.id}"

    def to_json(self, base: str) -> dict[str, Any]:
        """[STATUS] REST::StatusSerializer's fields; a boost wraps its original in `reblog`."""
        original = self.reblog_of
        parent = self.in_reply_to
        return {
            "id": self.id,
            "created_at": wire_time(self.created_at),
            "in_reply_to_id": parent.id if parent else None,
            "in_reply_to_account_id": parent.account.id if parent else None,
            "sensitive": bool(self.spoiler_text),
            "spoiler_text": self.spoiler_text,
            "visibility": self.visibility,
            "language": "en",
            "uri": f"{self.account.uri(base)}/statuses/{self.id}",
            # [BOOST] a boost has no page of its own: url is null, content empty.
            "url": None if original else self.url(base),
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": wire_time(self.edited_at) if self.edited_at else None,
            "content": "" if original else content_html(self.text, self.mentions, base),
            "reblog": original.to_json(base) if original else None,
            "application": None,
            "account": self.account.to_json(base),
            "media_attachments": [],
            "mentions": [
                {"id": a.id, "username": a.username, "url": a.url(base), "acct": a.acct}
                for a in self.mentions
            ],
            "tags": [{"name": tag, "url": f"{base}/tags/{tag}"} for tag in self.tags],
            "emojis": [],
            "card": None,
            "poll": None,
        }


@dataclass(frozen=True, kw_only=True)
class Notification:
    """[NOTE] One notification of the token's account: a mention, a boost of its status."""

    id: str
    type: str
    created_at: datetime
    to: Account  # whose notification it is
    account: Account  # who caused it (the mentioning or boosting account)
    status: Status

    def to_json(self, base: str) -> dict[str, Any]:
        """[NOTE] REST::NotificationSerializer: id, type, created_at, account, status."""
        return {
            "id": self.id,
            "type": self.type,
            "created_at": wire_time(self.created_at),
            "account": self.account.to_json(base),
            "status": self.status.to_json(base),
        }


def written_tags(text: str) -> tuple[str, ...]:
    """The hashtags a post's text carries, in order, each once (as first written)."""
    seen: dict[str, str] = {}
    for name in _TAG.findall(text):
        seen.setdefault(name.lower(), name)
    return tuple(seen.values())


def written_mentions(text: str) -> list[str]:
    """The accounts a post's text names ("user" or "user@domain")."""
    return _MENTION.findall(text)


def content_html(text: str, mentions: tuple[Account, ...], base: str) -> str:
    """[HTML] The text as Mastodon renders it: paragraphs, <br />, linked tags and mentions."""
    known = {a.acct.lower(): a for a in mentions}

    def render(line: str) -> str:
        out: list[str] = []
        position = 0
        pattern = re.compile(f"{_TAG.pattern}|{_MENTION.pattern}")
        for match in pattern.finditer(line):
            out.append(html.escape(line[position : match.start()], quote=False))
            tag, who = match.group(1), match.group(2)
            if tag is not None:
                out.append(
                    f'<a href="{base}/tags/{tag.lower()}" class="mention hashtag" rel="tag">'
                    f"#<span>{html.escape(tag)}</span></a>"
                )
            elif who is not None and who.lower() in known:
                account = known[who.lower()]
                out.append(
                    f'<span class="h-card" translate="no"><a href="{account.url(base)}"'
                    f' class="u-url mention">@<span>{html.escape(account.username)}</span></a>'
                    "</span>"
                )
            else:
                out.append(html.escape(match.group(0), quote=False))
            position = match.end()
        out.append(html.escape(line[position:], quote=False))
        return "".join(out)

    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "".join(
        "<p>" + "<br />".join(render(line) for line in p.split("\n")) + "</p>" for p in paragraphs
    )
