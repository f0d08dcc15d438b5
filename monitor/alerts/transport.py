"""Send one notification to one receiver and say whether (and when) a retry makes sense."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import orjson
from yarl import URL

from monitor.alerts.apprise_channel import send_apprise
from monitor.alerts.channels import alertmanager_payload, mattermost_payload, teams_payload
from monitor.alerts.formats import SCHEMA, clean_text, console_line, generic_payload, slack_payload
from monitor.alerts.models import AlertItem, Notification
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
# Words of a consumer's name, text or link (one character identifies nobody).
_WORD = re.compile(r"\w{2,}")
# \u00eb in a JSON answer written with ensure_ascii (Python's json default).
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
CONSUMER_DATA = "…"


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
        what = without_consumer_data(sent.error or "not accepted", n.items)
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
    return await _post(receiver, receiver.url.get_secret_value(), body, headers, session, now, n)


async def _post(
    receiver: ReceiverConfig,
    url: str,
    body: bytes,
    headers: dict[str, str],
    session: aiohttp.ClientSession,
    now: datetime,
    n: Notification,
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
    text = f"HTTP {status}" + _body_hint(receiver, detail, n.items)
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


def _body_hint(receiver: ReceiverConfig, raw: bytes, items: Iterable[AlertItem]) -> str:
    text = _redact(receiver, raw.decode("utf-8", "replace"))
    # A refusal may quote what it refused ({"error": ..., "item": {"author": ...}}), and this
    # text goes to the log and to the outbox row's last_error, which an erasure does not
    # scrub: logs and error columns hold no consumer data (docs/data-protection.md).
    text = without_consumer_data(text, items)
    text = clean_text(text, _ERROR_BODY_CHARS)
    return f": {text}" if text else ""


def without_consumer_data(text: str, items: Iterable[AlertItem]) -> str:
    """`text` (a receiver's or a library's error) with every word of the items' author,
    excerpt and link replaced by "…": what a receiver quotes of a notification, whole or in
    part, in another case, JSON-escaped or cut off mid-word, never reaches a log line."""
    words: set[str] = set()
    for item in items:
        for value in (item.author, item.excerpt, item.permalink):
            words.update(w.casefold() for w in _WORD.findall(value or ""))
    if not words:
        return text
    text = _JSON_ESCAPE.sub(lambda m: chr(int(m[1], 16)), text)

    def mask(m: re.Match[str]) -> str:
        word = m[0].casefold()
        if word in words:
            return CONSUMER_DATA
        # Where the text was cut (read up to a byte limit, shortened with "…"), a word may be
        # the start or the end of one of theirs.
        before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
        if after in ("", CONSUMER_DATA) and any(w.startswith(word) for w in words):
            return CONSUMER_DATA
        if before in ("", CONSUMER_DATA) and any(w.endswith(word) for w in words):
            return CONSUMER_DATA
        return m[0]

    return _WORD.sub(mask, text)
