"""Send one notification to one receiver and say whether (and when) a retry makes sense."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import orjson
from yarl import URL

from monitor.alerts.apprise_channel import send_apprise
from monitor.alerts.channels import alertmanager_payload, mattermost_payload, teams_payload
from monitor.alerts.formats import SCHEMA, clean_text, console_line, generic_payload, slack_payload
from monitor.alerts.models import Notification
from monitor.alerts.signing import (
    DELIVERY_HEADER,
    SCHEMA_HEADER,
    SIGNATURE_HEADER,
    sign,
    standard_headers,
)
from monitor.config.alerts import ReceiverConfig
from monitor.sources.http import parse_retry_after

# Enough of an error body to show e.g. Slack's "invalid_payload" or "channel_is_archived".
_ERROR_BODY_BYTES = 512
_ERROR_BODY_CHARS = 120
# Any URL left in an error text after redaction: it may be another form of a secret hook URL.
_ANY_URL = re.compile(r"https?://\S+")


@dataclass(frozen=True, kw_only=True)
class SendResult:
    """The outcome of one attempt, classified for the retry policy (monitor/alerts/delivery.py).

    Failed and `retryable`: 5xx, 408, 429, timeouts and network errors, retried until max_age.
    Failed and not retryable: the receiver refused (another 4xx, a redirect); retried for a
    short grace, then given up. `permanent`: nothing to retry at all (no usable URL).
    """

    ok: bool
    retryable: bool
    retry_after: float | None = None  # seconds the receiver asked us to wait (Retry-After)
    status: int | None = None  # HTTP status, None when no response arrived
    error: str | None = None  # names the receiver, never its URL or secret
    permanent: bool = False


async def send(
    receiver: ReceiverConfig,
    n: Notification,
    *,
    delivery_id: str,
    session: aiohttp.ClientSession,
    now: datetime,
) -> SendResult:
    """Deliver `n` once to `receiver`: POST it in the receiver's format, or print it (console)."""
    if receiver.type == "console":
        print(console_line(n), file=sys.stdout, flush=True)
        return SendResult(ok=True, retryable=False)
    if receiver.type == "apprise":
        # Apprise says only True or False, no status: retried until max_age, like a 5xx.
        urls = [url.get_secret_value() for url in receiver.urls or ()]
        sent = await send_apprise(
            receiver.name, urls, n, delivery_id=delivery_id, time_limit=receiver.timeout
        )
        if sent.ok:
            return SendResult(ok=True, retryable=False)
        what = sent.error or "not accepted"
        return _failed(receiver, what, retryable=not sent.unusable, permanent=sent.unusable)
    if receiver.url is None:  # the config validator requires a url; this keeps mypy honest
        return _failed(receiver, "has no url", retryable=False, permanent=True)
    headers = {"Content-Type": "application/json"}
    if receiver.type in ("webhook", "alertmanager"):
        if receiver.type == "webhook":
            body = orjson.dumps(generic_payload(n, delivery_id=delivery_id))
            headers[SCHEMA_HEADER] = SCHEMA
        else:
            body = orjson.dumps(alertmanager_payload(n, receiver=receiver.name))
        headers[DELIVERY_HEADER] = delivery_id
        # Signed with the attempt's time, not the notification's: a retry hours later
        # must still pass the receiver's replay window.
        secret = receiver.secret.get_secret_value() if receiver.secret is not None else None
        if receiver.type == "webhook" and receiver.signature == "standard":
            # Standard Webhooks; webhook-id is the delivery id, the same on every retry.
            headers.update(standard_headers(secret, delivery_id, body, int(now.timestamp())))
        elif secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret, body, int(now.timestamp()))
    elif receiver.type == "teams":
        body = orjson.dumps(teams_payload(n))
    elif receiver.type == "mattermost":
        body = orjson.dumps(mattermost_payload(n))
    else:
        body = orjson.dumps(slack_payload(n))
    return await _post(receiver, receiver.url.get_secret_value(), body, headers, session, now)


async def _post(
    receiver: ReceiverConfig,
    url: str,
    body: bytes,
    headers: dict[str, str],
    session: aiohttp.ClientSession,
    now: datetime,
) -> SendResult:
    try:
        async with session.post(
            URL(url),
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=receiver.timeout),
            # A redirect would carry the signed body to another address (and aiohttp turns a
            # redirected POST into a GET): receivers are configured with their final URL.
            allow_redirects=False,
        ) as resp:
            status = resp.status
            retry_after = parse_retry_after(resp.headers.get("Retry-After"), now)
            detail = b"" if 200 <= status < 300 else await resp.content.read(_ERROR_BODY_BYTES)
    except (aiohttp.InvalidURL, ValueError) as err:
        return _failed(
            receiver, f"invalid URL ({type(err).__name__})", retryable=False, permanent=True
        )
    except TimeoutError:
        # Includes aiohttp's ServerTimeoutError and the total ClientTimeout.
        return _failed(receiver, f"timed out after {receiver.timeout:g} s", retryable=True)
    except (aiohttp.ClientError, OSError) as err:
        return _failed(receiver, f"request failed: {_describe(receiver, err)}", retryable=True)

    if 200 <= status < 300:
        return SendResult(ok=True, retryable=False, status=status)
    text = f"HTTP {status}" + _body_hint(receiver, detail)
    if status == 429:
        return _failed(receiver, text, retryable=True, status=status, retry_after=retry_after)
    if status >= 500 or status == 408:
        # A 503 may carry Retry-After too; it beats our backoff curve.
        return _failed(receiver, text, retryable=True, status=status, retry_after=retry_after)
    # Other 4xx (bad payload, revoked Slack hook, wrong secret) and 3xx: a refusal, which
    # the delivery loop retries only for a short grace (a hook being redeployed, a secret
    # being rotated) before giving up.
    return _failed(receiver, text, retryable=False, status=status)


def _failed(
    receiver: ReceiverConfig,
    what: str,
    *,
    retryable: bool,
    status: int | None = None,
    retry_after: float | None = None,
    permanent: bool = False,
) -> SendResult:
    return SendResult(
        ok=False,
        retryable=retryable,
        retry_after=retry_after,
        status=status,
        error=f"receiver {receiver.name!r} ({receiver.type}): {what}",
        permanent=permanent,
    )


def _redact(receiver: ReceiverConfig, text: str) -> str:
    """Remove the receiver's URL (a credential for Slack) and secret from a free text."""
    secrets = [s.get_secret_value() for s in (receiver.url, receiver.secret) if s is not None]
    if receiver.url is not None:
        # aiohttp messages may quote the URL in another form (no query, re-encoded path).
        parsed = URL(receiver.url.get_secret_value())
        secrets += [str(parsed), parsed.path, parsed.raw_path]
    for secret in sorted((s for s in secrets if len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return _ANY_URL.sub("<url>", text)


def _describe(receiver: ReceiverConfig, err: BaseException) -> str:
    return f"{type(err).__name__}: {_redact(receiver, str(err)) or 'no details'}"


def _body_hint(receiver: ReceiverConfig, raw: bytes) -> str:
    text = clean_text(_redact(receiver, raw.decode("utf-8", "replace")), _ERROR_BODY_CHARS)
    return f": {text}" if text else ""
