"""HMAC-SHA256 signatures for generic webhook deliveries (header `X-Webcare-Signature`)."""

# The signed message is `f"{t}.".encode() + body`, with `t` the Unix time of the attempt: a
# receiver that checks the timestamp against its own clock rejects replays of old deliveries,
# and the body itself carries the delivery id that receivers deduplicate on.

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Webcare-Signature"
DELIVERY_HEADER = "X-Webcare-Delivery"
SCHEMA_HEADER = "X-Webcare-Schema"
DEFAULT_TOLERANCE = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Webcare-Signature` value for `body` sent at `timestamp`: `t=<unix>,v1=<hex>`."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify(
    secret: str, body: bytes, header: str, *, now: int, tolerance: int = DEFAULT_TOLERANCE
) -> bool:
    """Whether `header` signs `body` with `secret` within `tolerance` seconds of `now`."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            # Several v1 values are allowed so a sender can sign with an old and a new key
            # while receivers roll over.
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = _digest(secret, body, timestamp).encode()
    # compare_digest on every candidate: the time taken does not reveal which one matched.
    matches = [hmac.compare_digest(expected, c.encode("ascii", "replace")) for c in candidates]
    return any(matches)


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
