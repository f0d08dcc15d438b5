"""Graph API JSON into our types: times, usage headers, errors and objects' fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from monitor.sources.base import AuthError, FatalError, RateLimited, SourceError, TransientError
from monitor.sources.http import JsonResponse, redact
from monitor.sources.wire import as_int

FEED_FIELDS = "id,from{id,name},message,created_time,permalink_url,is_hidden"

COMMENT_FIELDS = "id,from{id,name},message,created_time,parent{id},is_hidden,permalink_url"

GRAPH_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # "2024-01-05T21:13:04+0000"

THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001})

# 102 session key invalid, 104 no token sent, 190 invalid/expired token.
TOKEN_CODES = frozenset({102, 104, 190})

PERMISSION_CODES = frozenset({10, *range(200, 300)})

TRANSIENT_CODES = frozenset({1, 2})

_TOKEN_PROBLEMS: Mapping[int, str] = MappingProxyType(
    {
        458: "the app is no longer authorised by the user who made the token",
        459: "the user who made the token must log in at facebook.com to pass a checkpoint",
        460: "access token invalidated (password change or security reset)",
        463: "access token expired",
        464: "the user who made the token is not confirmed",
        467: "access token invalid (the user logged out)",
    }
)

_NEW_TOKEN = (
    "generate a new Page access token (with pages_read_engagement and pages_read_user_content)"
    " and update access_token in the config"
)

USAGE_KEYS = ("call_count", "total_cputime", "total_time")

Raw = Mapping[str, Any]


class ObjectMissing(FatalError):
    """Graph code 100/33: the object does not exist (or cannot be read)."""


@dataclass(frozen=True, kw_only=True)
class GraphUsage:
    """Usage reported by the Graph API headers of one response."""

    ratio: float | None  # highest percentage / 100 across all usage headers
    regain_seconds: float | None  # estimated_time_to_regain_access, in seconds


@dataclass(frozen=True, kw_only=True)
class GraphProduct:
    """How a Graph error is told for one product (the Page's wall, Messenger, Instagram)."""

    name: str = "Facebook"
    # What to do about a bad or expired token, and about a missing permission.
    new_token: str = _NEW_TOKEN
    permission: str = (
        "give the app pages_read_engagement and pages_read_user_content and make sure the"
        " token's user can moderate the Page, then " + _NEW_TOKEN
    )
    # The error a deleted (or unreadable) object raises, and whether a bare 404 means that.
    missing: type[FatalError] = ObjectMissing
    missing_on_404: bool = False


PAGE = GraphProduct()


def graph_error(
    error: Mapping[str, Any],
    status: int,
    usage: GraphUsage,
    where: str,
    token: str,
    product: GraphProduct = PAGE,
) -> SourceError:
    """Translate a Graph `{"error": {...}}` into our error tree, in the product's words."""
    code = as_int(error.get("code"))
    subcode = as_int(error.get("error_subcode"))
    ident = f"code {code}" if subcode is None else f"code {code}/{subcode}"
    ident += f", fbtrace_id {error.get('fbtrace_id') or '-'}"
    said = redact(str(error.get("message") or "no message"), token)[:300]
    detail = f"Graph API said {said!r} [{where}]"
    if code in THROTTLE_CODES:
        return RateLimited(
            f"throttled by {product.name} ({ident}): {detail}", retry_after=usage.regain_seconds
        )
    if code in TOKEN_CODES:
        problem = "no access token was sent" if code == 104 else "access token invalid"
        problem = _TOKEN_PROBLEMS.get(subcode or 0, problem)
        return AuthError(f"{problem} ({ident}): {product.new_token}. {detail}")
    if code in PERMISSION_CODES:
        return AuthError(f"permission missing ({ident}): {product.permission}. {detail}")
    if code in TRANSIENT_CODES or error.get("is_transient") is True:
        return TransientError(f"temporary Graph API error ({ident}): {detail}")
    if code == 100 and "appsecret_proof" in said:
        return AuthError(
            f"Graph wants a valid appsecret_proof ({ident}): set app_secret on the source"
            f" (or in [facebook_webhook]) to the app's secret from the Meta app dashboard."
            f" {detail}"
        )
    if code == 100 and (subcode == 33 or (product.missing_on_404 and status == 404)):
        return product.missing(
            f"object does not exist or the token cannot read it ({ident}): {detail}"
        )
    if status >= 500:
        return TransientError(f"Graph API server error HTTP {status} ({ident}): {detail}")
    return FatalError(f"Graph API rejected the request ({ident}): {detail}")


def graph_object(
    response: JsonResponse, usage: GraphUsage, token: str, product: GraphProduct = PAGE
) -> Raw:
    """A Graph answer's JSON object, or the error it stands for in our tree."""
    body = response.body
    where = f"GET {response.url}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        raise graph_error(body["error"], response.status, usage, where, token, product)
    if response.status >= 500:
        raise TransientError(f"{where}: HTTP {response.status}")
    if response.status >= 400:
        raise FatalError(f"{where}: HTTP {response.status} without a Graph error body")
    if not isinstance(body, dict):
        raise TransientError(f"{where}: Graph response is not a JSON object")
    return body


def parse_graph_time(value: str) -> datetime:
    """Parse a Graph timestamp such as `2024-01-05T21:13:04+0000` into aware UTC."""
    return datetime.strptime(value, GRAPH_TIME_FORMAT).astimezone(UTC)


def comment_seq(comment_id: str, position: int) -> int:
    """Order inside a thread: the number after the last "_" of `{post}_{comment}` ids."""
    tail = comment_id.rpartition("_")[2]
    return int(tail) if tail.isdigit() else position


def parse_usage(headers: Mapping[str, str]) -> GraphUsage:
    """Highest usage fraction and regain time from Graph's usage headers."""
    # x-app-usage, x-business-use-case-usage and x-page-usage; malformed headers are ignored.
    highest: float | None = None
    regain: float | None = None
    for name in ("x-app-usage", "x-page-usage"):
        document = _json_header(headers.get(name))
        if isinstance(document, dict):
            highest = _max(highest, _usage_percent(document))
    business = _json_header(headers.get("x-business-use-case-usage"))
    if isinstance(business, dict):
        for entries in business.values():
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                highest = _max(highest, _usage_percent(entry))
                minutes = _as_number(entry.get("estimated_time_to_regain_access"))
                if minutes is not None and minutes > 0:
                    regain = _max(regain, minutes * 60.0)
    return GraphUsage(ratio=None if highest is None else highest / 100.0, regain_seconds=regain)


def _json_header(value: str | None) -> Any:
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _usage_percent(document: Mapping[str, Any]) -> float | None:
    values = [_as_number(document.get(key)) for key in USAGE_KEYS]
    numbers = [value for value in values if value is not None]
    return max(numbers) if numbers else None


def _max(current: float | None, candidate: float | None) -> float | None:
    if candidate is None:
        return current
    return candidate if current is None else max(current, candidate)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def next_link(body: Mapping[str, Any]) -> str | None:
    paging = body.get("paging")
    if not isinstance(paging, dict):
        return None
    link = paging.get("next")
    return link if isinstance(link, str) and link else None


class Malformed(ValueError):
    """Graph returned an object without a field we need (id, created_time)."""


def required_id(raw: Mapping[str, Any], kind: str) -> str:
    value = raw.get("id")
    if not isinstance(value, str | int) or not str(value):
        raise Malformed(f"Graph returned a {kind} without an id")
    return str(value)


def author_of(raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    # Graph leaves out `from` for people who did not authorise the app: an unknown consumer.
    author = raw.get("from")
    if not isinstance(author, dict):
        return None, None
    author_id = author.get("id")
    name = author.get("name")
    return (
        str(author_id) if author_id is not None else None,
        name if isinstance(name, str) else None,
    )


def text_of(raw: Mapping[str, Any]) -> str:
    message = raw.get("message")
    return message if isinstance(message, str) else ""


def permalink_of(raw: Mapping[str, Any]) -> str | None:
    link = raw.get("permalink_url")
    return link if isinstance(link, str) and link else None


def created_time(raw: Mapping[str, Any], object_id: str) -> datetime:
    value = raw.get("created_time")
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return parse_graph_time(value)
    except ValueError as err:
        raise Malformed(f"Graph returned {object_id} with unreadable created_time") from err
