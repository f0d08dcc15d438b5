"""Send a notification through Apprise: e-mail, SMS gateways, Telegram, ntfy and ~100 more.

Apprise is synchronous, so each URL is sent in a worker thread (asyncio.to_thread), all of a
receiver's URLs at once, each within the receiver's timeout (Apprise's own connect and read
timeouts are set to it too, so an abandoned thread ends soon). Apprise answers True or False
without an HTTP status, so every failure is retryable until the receiver's `max_age`
(monitor/alerts/transport.py maps the outcome).

A receiver with several URLs: a retry goes only to the URLs that have not accepted the
notification yet (remembered in memory per delivery, so a restart between two attempts may
repeat one to a URL that had it; that is the same at-least-once edge as a lost HTTP response).
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import apprise

from monitor.alerts.formats import clean_text, phone_text
from monitor.alerts.models import Notification
from monitor.config.types import url_secrets

# Deliveries with URLs that accepted while others did not: (receiver, delivery id) -> URLs.
_ACCEPTED: OrderedDict[tuple[str, str], set[int]] = OrderedDict()
_ACCEPTED_LIMIT = 10_000
# Beyond Apprise's own deadline, how long to wait for its thread before calling it a timeout.
_THREAD_GRACE_SECONDS = 5.0
_ERROR_CHARS = 200
_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_NOTIFY_TYPE = {
    "warning": apprise.NotifyType.WARNING,
    "breach": apprise.NotifyType.FAILURE,
    "escalation": apprise.NotifyType.FAILURE,
    "reminder": apprise.NotifyType.FAILURE,
    "resolved": apprise.NotifyType.SUCCESS,
    "handover": apprise.NotifyType.INFO,
    "taken": apprise.NotifyType.INFO,
    "window": apprise.NotifyType.WARNING,
}


@dataclass(frozen=True, kw_only=True)
class AppriseOutcome:
    """What one attempt came to: every URL accepted, or why not (never a URL or a secret)."""

    ok: bool
    error: str | None = None
    # A URL Apprise cannot load (the config check refuses those): retrying cannot help.
    unusable: bool = False


async def send_apprise(
    name: str, urls: Sequence[str], n: Notification, *, delivery_id: str, time_limit: float
) -> AppriseOutcome:
    """Send `n` as a short text (title + body) to each of `urls` that has not had it yet."""
    title, body = phone_text(n)
    key = (name, delivery_id)
    accepted = _ACCEPTED.get(key, set())
    todo = [number for number in range(len(urls)) if number not in accepted]
    answers = await asyncio.gather(
        *(_send_one(urls[number], title, body, n.kind, time_limit) for number in todo)
    )
    problems: list[str] = []
    unusable = False
    for number, (ok, problem, bad_url) in zip(todo, answers, strict=True):
        if ok:
            accepted.add(number)
            continue
        unusable = unusable or bad_url
        scheme = urls[number].partition("://")[0] if "://" in urls[number] else "?"
        where = f"URL {number + 1} of {len(urls)} ({clean_text(scheme, 20)})"
        problems.append(f"{where}: {_redact(urls, problem)}")
    if not problems:
        _ACCEPTED.pop(key, None)
        return AppriseOutcome(ok=True)
    if accepted:
        _ACCEPTED[key] = accepted
        _ACCEPTED.move_to_end(key)
        while len(_ACCEPTED) > _ACCEPTED_LIMIT:
            _ACCEPTED.popitem(last=False)
    return AppriseOutcome(ok=False, error="; ".join(problems), unusable=unusable)


async def _send_one(
    url: str, title: str, body: str, kind: str, time_limit: float
) -> tuple[bool, str, bool]:
    """(accepted, why not, the URL cannot be loaded) for one URL."""
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_notify, url, title, body, kind, time_limit),
            time_limit + _THREAD_GRACE_SECONDS,
        )
    except TimeoutError:
        return False, f"timed out after {time_limit:g} s", False
    except Exception as err:  # Apprise raises little, but a plugin bug must not stop the loop
        return False, f"Apprise failed ({type(err).__name__})", False


def _notify(url: str, title: str, body: str, kind: str, timeout: float) -> tuple[bool, str, bool]:
    """In a worker thread: one Apprise call for one URL."""
    service = apprise.Apprise()
    if not service.add(url):
        return False, "Apprise cannot load this URL", True
    for plugin in service:
        # Apprise's defaults (4 s, 15 s for SMTP) give way to the receiver's timeout.
        plugin.socket_connect_timeout = timeout
        plugin.socket_read_timeout = timeout
    result = service.notify(
        body=body,
        title=title,
        notify_type=_NOTIFY_TYPE.get(kind, apprise.NotifyType.INFO),
        body_format=apprise.NotifyFormat.TEXT,
        timeout=timeout,
    )
    if result:
        return True, "", False
    if result.status == apprise.AppriseResultStatus.TIMEOUT:
        return False, f"timed out after {timeout:g} s", False
    said = [clean_text(entry.message, _ERROR_CHARS) for entry in result.logs()]
    return False, " / ".join(s for s in said if s)[-_ERROR_CHARS:] or "not accepted", False


def _redact(urls: Sequence[str], text: str) -> str:
    """Remove every URL and its secret parts from a text Apprise wrote."""
    secrets = [part for url in urls for part in url_secrets(url)]
    for secret in sorted((s for s in secrets if len(s) > 3), key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return _ANY_URL.sub("<url>", text)
