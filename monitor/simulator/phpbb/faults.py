"""What a board, or the proxy in front of it, can answer instead of a feed ([PROXY], [BROKEN])."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.simulator.base import Delay, Disconnect, HttpStatus, Throttle, TruncatedBody


def rate_limited(status: int = 429, retry_after: str = "120") -> HttpStatus:
    """A proxy's throttle answer (phpBB has no rate limit of its own): 429 or 503 + Retry-After."""
    reason = "Too Many Requests" if status == 429 else "Service Temporarily Unavailable"
    return HttpStatus(
        status=status,
        body=f"<html><head><title>{status} {reason}</title></head>"
        f"<body><center><h1>{status} {reason}</h1></center></body></html>",
        headers={"Retry-After": retry_after},
    )


@dataclass(frozen=True, kw_only=True)
class MalformedXml:
    """Answer 200 with the Atom content type and a body that is not well-formed XML."""


@dataclass(frozen=True, kw_only=True)
class CutFeed:
    """Answer 200 with a complete HTTP body that holds only the first half of the feed."""

    # What a board that dies mid-render (PHP fatal error, memory limit) sends: the transfer is
    # fine, the XML is not.


@dataclass(frozen=True, kw_only=True)
class HtmlPage:
    """Answer 200 with an HTML page (a captive portal or a proxy's challenge) instead of a feed."""


@dataclass(frozen=True, kw_only=True)
class EntityExpansion:
    """Answer 200 with a feed that declares and nests XML entities ("billion laughs")."""


Fault = (
    HttpStatus
    | Throttle
    | Delay
    | MalformedXml
    | TruncatedBody
    | CutFeed
    | HtmlPage
    | EntityExpansion
    | Disconnect
)
