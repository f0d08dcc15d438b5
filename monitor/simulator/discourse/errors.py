"""Discourse's error answers ([AUTH], [403], [404], [429], [IP429], [NGINX], [TOPIC], [500])."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

import orjson
from aiohttp import web

from monitor.simulator import base
from monitor.simulator.base import Delay, Disconnect, HttpStatus, MalformedJson, TruncatedBody
from monitor.simulator.discourse.model import _escape

INVALID_CREDENTIALS = (
    "You are not permitted to view the requested resource. The API username or key is invalid."
)
INVALID_ACCESS = "You are not permitted to view the requested resource."
NOT_FOUND = "The requested URL or resource could not be found."
NOT_LOGGED_IN = "You need to be logged in to do that."


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """Discourse's JSON 429 [429], with Retry-After in seconds by default."""

    wait_seconds: int = 39
    # "http-date" imitates a gateway that sends the date form [DATE], "none" a proxy that drops
    # the header (the body keeps `extras.wait_seconds`).
    retry_after: Literal["seconds", "http-date", "none"] = "seconds"
    error_code: str | None = "admin_api_key_rate_limit"


@dataclass(frozen=True, kw_only=True)
class IpRateLimit:
    """The plain-text per-IP 429 of Discourse's request tracker middleware [IP429]."""

    wait_seconds: int = 8
    error_code: str = "ip_10_secs_limit"


@dataclass(frozen=True, kw_only=True)
class NginxRateLimit:
    """nginx's HTML 429 in front of Discourse, without Retry-After [NGINX]."""


@dataclass(frozen=True, kw_only=True)
class DiscourseError:
    """A Discourse JSON error `{"errors": [...], "error_type": ...}` with any status."""

    status: int
    error_type: str
    message: str


Fault = (
    RateLimit
    | IpRateLimit
    | NginxRateLimit
    | DiscourseError
    | HttpStatus
    | Delay
    | MalformedJson
    | TruncatedBody
    | Disconnect
)


class _Answer(Exception):
    """Raised inside request handling to answer with a Discourse JSON error."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class _Reply(Exception):
    """Raised inside request handling to answer with a prepared response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class _RateLimited(_Answer):
    """The built-in admin API limit was hit: answer like [429]."""

    def __init__(self, wait: int) -> None:
        super().__init__(429, "rate_limit", _too_many_times(wait))
        self.wait = wait


def _time_left(seconds: int) -> str:
    return f"{seconds} second" if seconds == 1 else f"{seconds} seconds"


def _too_many_times(seconds: int) -> str:
    return (
        f"You’ve performed this action too many times. Please wait {_time_left(seconds)}"
        " before trying again."
    )


def _rate_limited(
    seconds: int,
    *,
    header: Literal["seconds", "http-date", "none"],
    code: str | None,
    now: datetime | None = None,
) -> web.Response:
    """[429] Discourse's JSON rate-limit answer; [DATE] with the header as an HTTP-date."""
    headers: dict[str, str] = {}
    if header == "seconds":
        headers["Retry-After"] = str(seconds)
    elif header == "http-date":
        moment = (now or datetime.now(UTC)) + timedelta(seconds=seconds)
        headers["Retry-After"] = format_datetime(moment.astimezone(UTC), usegmt=True)
    if code:
        headers["Discourse-Rate-Limit-Error-Code"] = code
    body = {
        "errors": [_too_many_times(seconds)],
        "error_type": "rate_limit",
        "extras": {"wait_seconds": seconds, "time_left": _time_left(seconds)},
    }
    return _raw_json(orjson.dumps(body), status=429, headers=headers)


def _error(
    status: int, error_type: str, message: str, extras: Mapping[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"errors": [message], "error_type": error_type}
    if extras is not None:
        body["extras"] = dict(extras)
    return _raw_json(orjson.dumps(body), status=status)


def _topic_failure(status: int) -> web.Response:
    """How Discourse answers a read of a topic that fails: [TOPIC] 403/404/400, [500] 5xx."""
    if status >= 500:
        reason = "Internal Server Error" if status == 500 else "Server Error"
        return _raw_json(orjson.dumps({"status": status, "error": reason}), status=status)
    if status == 400:
        return _error(
            400,
            "invalid_parameters",
            "You supplied invalid parameters to the request: id",
        )
    # The generic page, never the private topic's title (page_not_found.title in server.en.yml).
    page = "<div class='page-not-found'><h1>Oops! That page doesn’t exist or is private.</h1></div>"
    extras = {"title": "Page Not Found", "html": page, "group": None}
    if status == 403:
        return _error(403, "invalid_access", INVALID_ACCESS, extras)
    return _error(404, "not_found", NOT_FOUND, extras)


def _json(body: Mapping[str, Any] | Sequence[Any]) -> web.Response:
    return _raw_json(orjson.dumps(body))


def _raw_json(
    raw: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return base.json_response(raw, status=status, charset="utf-8", headers=headers)


def _html_page(title: str) -> web.Response:
    """What a browser gets without `.json` or an Accept: application/json header."""
    return web.Response(
        text=f"<!DOCTYPE html><html><head><title>{_escape(title)}</title></head></html>",
        content_type="text/html",
    )
