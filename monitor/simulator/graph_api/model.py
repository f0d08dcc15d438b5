"""What the fake Graph API stores (pages, posts, comments) and how a call and its paging look."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from multidict import MultiDict
from yarl import URL

from monitor.simulator.graph_api.errors import _invalid_parameter

WIRE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"  # [TIME]: no colon in the offset
_VERSION = re.compile(r"^v\d+\.\d+$")
BATCH_LIMIT = 50  # [BATCH]
IDS_LIMIT = 50  # [IDS]


class RecordedRequest(NamedTuple):
    """One request (or batch sub-request) the fake received: its path and query parameters."""

    path: str
    query: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class _Page:
    """A Facebook Page served by the fake."""

    id: str
    name: str
    username: str | None


@dataclass(frozen=True, kw_only=True)
class _Node:
    """A post or comment as the fake stores it."""

    id: str
    page_id: str
    number: int  # the globally increasing part of the id; orders items created in one second
    is_post: bool
    created: int  # unix seconds: Graph times have 1-second resolution
    updated: int
    message: str
    author: tuple[str, str] | None  # None: `from` is withheld (user did not authorise the app)
    post_id: str
    parent_id: str | None  # comments only: the post or the comment replied to
    hidden: bool = False

    @property
    def key(self) -> tuple[int, int]:
        """Chronological sort key."""
        return (self.created, self.number)


@dataclass(frozen=True, kw_only=True)
class _Call:
    """One Graph call, from a plain HTTP request or from a batch sub-request."""

    url: URL  # absolute, as the caller would have asked for it: paging links are built from it
    path: str  # what faults, delays and holds match on
    version: str
    segments: tuple[str, ...]  # () for the root (multi-id reads), else (object_id[, edge])
    query: Mapping[str, str]
    token: str | None
    proof: str | None = None  # appsecret_proof ([PROOF])


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("created_time must be timezone-aware")
    return int(moment.timestamp())


def _wire_time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime(WIRE_TIME_FORMAT)


def _token(query: Mapping[str, str], authorization: str) -> str | None:
    """The access token of a request: `access_token=` in the query, else the header."""
    token = query.get("access_token")
    if token is None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            token = value.strip()
    return token


def _version_number(version: str) -> tuple[int, int]:
    major, _, minor = version.removeprefix("v").partition(".")
    return int(major), int(minor or 0)


def _split_ids(query: Mapping[str, str]) -> list[str]:
    return [part.strip() for part in query.get("ids", "").split(",") if part.strip()]


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError as err:
        raise _invalid_parameter() from err


def _limit(query: Mapping[str, str]) -> int:
    limit = _int_param(query, "limit")
    return 25 if limit is None else max(1, min(limit, 100))


def _choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = query.get(name, allowed[0]).lower()
    if value not in allowed:
        raise _invalid_parameter()
    return value


def _comes_after(key: tuple[int, int], mark: tuple[int, int], order: str) -> bool:
    return key > mark if order == "chronological" else key < mark


def _encode_mark(node: _Node, prefix: str = "") -> str:
    raw = f"{node.created}:{node.number}".encode()
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_mark(token: str, prefix: str = "") -> tuple[int, int]:
    try:
        encoded = token.removeprefix(prefix)
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        created, number = raw.split(":")
        return int(created), int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise _invalid_parameter() from err


def _link(call: _Call, *, drop: tuple[str, ...], set_: Mapping[str, str]) -> str:
    """The absolute URL of this call with some parameters replaced, as Graph builds paging."""
    query: MultiDict[str] = MultiDict(
        (key, value) for key, value in call.query.items() if key not in drop and key not in set_
    )
    query.extend(set_)
    return str(call.url.with_query(query))
