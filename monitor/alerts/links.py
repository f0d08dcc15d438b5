"""Signed, expiring ack/dismiss links for notifications (HMAC-SHA256, no server state).

A link is `{base}/act/{item_id}/{action}?exp=<unix>&sig=<hex>`, the signature an HMAC over
`v1:{action}:{item_id}:{exp}`. Opening it (GET) only shows a confirmation page, because chat
apps and mail scanners fetch links on their own; the page's button POSTs the same URL, which
does it. The expiry is counted from the notification's instant, so a retried delivery carries
byte-identical links.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Action = Literal["ack", "dismiss"]
ACTIONS: tuple[Action, ...] = ("ack", "dismiss")
_SIG_HEX = 32  # 128 bits: plenty against guessing, short enough for a chat message


def derive_secret(link_secret: str | None, tokens: Iterable[str]) -> bytes | None:
    """The configured secret, else one derived from the API tokens; None when neither exists."""
    if link_secret:
        return link_secret.encode()
    values = sorted(tokens)
    if not values:
        return None
    return hmac.new(
        b"webcare-monitor/links/v1", "\0".join(values).encode(), hashlib.sha256
    ).digest()


@dataclass(frozen=True, kw_only=True)
class Links:
    """Builds and checks the links; `base_url` is where people reach this service."""

    base_url: str
    secret: bytes
    ttl: timedelta

    def signature(self, action: str, item_id: int, expires: int) -> str:
        """The hex signature of one link."""
        message = f"v1:{action}:{item_id}:{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:_SIG_HEX]

    def action_url(self, action: Action, item_id: int, issued_at: datetime) -> str:
        """The link for `action` on an item, valid for `ttl` from `issued_at`."""
        expires = int((issued_at + self.ttl).timestamp())
        sig = self.signature(action, item_id, expires)
        return f"{self.base_url}/act/{item_id}/{action}?exp={expires}&sig={sig}"

    def queue_url(self) -> str:
        """The queue page."""
        return f"{self.base_url}/"

    def verify(self, action: str, item_id: int, expires: str, sig: str, *, now: datetime) -> bool:
        """Whether the link is genuine and not expired."""
        try:
            when = int(expires)
        except ValueError:
            return False
        expected = self.signature(action, item_id, when)
        genuine = hmac.compare_digest(expected.encode(), sig.encode("ascii", "replace"))
        return genuine and now.timestamp() < when
