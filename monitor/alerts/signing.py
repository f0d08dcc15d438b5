"""HMAC-SHA256 signatures for generic webhook deliveries: Standard Webhooks (the default) and
the legacy `X-Webcare-Signature` header."""

# Standard Webhooks (https://www.standardwebhooks.com/, verified by the `standardwebhooks`
# package): `webhook-id` (our delivery id, the same on every retry, so receivers drop
# replays), `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature:
# v1,<base64 HMAC-SHA256 of "{id}.{timestamp}." + body>`, keyed with the base64-decoded
# `whsec_` secret.
#
# Legacy: the signed message is `f"{t}.".encode() + body`, with `t` the Unix time of the attempt: a
# receiver that checks the timestamp against its own clock rejects replays of old deliveries,
# and the body itself carries the delivery id that receivers deduplicate on.

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from monitor.config.types import standard_webhook_key

SIGNATURE_HEADER = "X-Webcare-Signature"
DELIVERY_HEADER = "X-Webcare-Delivery"
SCHEMA_HEADER = "X-Webcare-Schema"
DEFAULT_TOLERANCE = 300
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"


def standard_headers(
    secret: str | None, msg_id: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The Standard Webhooks headers for `body` sent at `timestamp`; unsigned without a secret."""
    headers = {STANDARD_ID_HEADER: msg_id, STANDARD_TIMESTAMP_HEADER: str(timestamp)}
    if secret is not None:
        headers[STANDARD_SIGNATURE_HEADER] = sign_standard(secret, msg_id, body, timestamp)
    return headers


def sign_standard(secret: str, msg_id: str, body: bytes, timestamp: int) -> str:
    """The `webhook-signature` value: `v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}`."""
    return f"v1,{_standard_digest(standard_webhook_key(secret), msg_id, body, timestamp)}"


def verify_standard(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE,
) -> bool:
    """Whether Standard Webhooks `headers` sign `body` with `secret` within `tolerance` of `now`
    (what `standardwebhooks.Webhook(secret).verify` checks, on a clock of your choosing)."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get(STANDARD_ID_HEADER)
    stamp = lower.get(STANDARD_TIMESTAMP_HEADER, "")
    signatures = lower.get(STANDARD_SIGNATURE_HEADER)
    if not msg_id or not signatures or not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    digest = _standard_digest(standard_webhook_key(secret), msg_id, body, int(stamp))
    expected = f"v1,{digest}".encode()
    # Space-separated: several while a secret is being rotated; compare each in full.
    matches = [
        hmac.compare_digest(expected, s.encode("ascii", "replace")) for s in signatures.split(" ")
    ]
    return any(matches)


def _standard_digest(key: bytes, msg_id: str, body: bytes, timestamp: int) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The legacy `X-Webcare-Signature` for `body` sent at `timestamp`: `t=<unix>,v1=<hex>`."""
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
