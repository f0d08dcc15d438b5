"""/webhooks/facebook: the subscription handshake and signed `feed` and `messages` deliveries."""

from __future__ import annotations

import hmac
from collections.abc import Collection

from aiohttp import web

from monitor.domain import Batch
from monitor.logging import get_logger
from monitor.sources.facebook import FacebookPageSource
from monitor.sources.facebook_webhook import (
    MalformedDelivery,
    PageChanges,
    parse_delivery,
    signature_valid,
)
from monitor.sources.instagram_webhook import is_instagram
from monitor.sources.messenger import parse_messaging
from monitor.web.edge import Refusal, secret_bytes
from monitor.web.edge import body as read_body
from monitor.web.instagram_webhook import deliver_instagram
from monitor.web.keys import CONFIG, COORDINATOR, METRICS
from monitor.web.messenger_webhook import route_messaging

log = get_logger("monitor.web.facebook_webhook")
PATH = "/webhooks/facebook"
MAX_CHALLENGE_CHARS = 200


def _page_sources(request: web.Request) -> dict[str, str]:
    """Numeric page id -> source name, for every Facebook source."""
    pages: dict[str, str] = {}
    for name, entry in request.app[COORDINATOR].sources.items():
        if isinstance(entry.source, FacebookPageSource) and entry.source.page_numeric_id:
            pages[entry.source.page_numeric_id] = name
    return pages


def _count(request: web.Request, outcome: str) -> None:
    request.app[METRICS].webhook_deliveries.labels("facebook", outcome).inc()


async def handshake(request: web.Request) -> web.Response:
    """GET: answer Facebook's subscription check with the challenge."""
    settings = request.app[CONFIG].facebook_webhook
    if settings is None:
        raise Refusal("Facebook webhooks are not configured", status=404)
    query = request.query
    expected = settings.verify_token.get_secret_value().encode()
    given = secret_bytes(query.get("hub.verify_token", ""))
    if query.get("hub.mode") != "subscribe" or not hmac.compare_digest(expected, given):
        raise Refusal("verify token mismatch", status=403)
    challenge = query.get("hub.challenge", "")
    # Facebook's challenge is a number; anything else is not echoed back.
    if len(challenge) > MAX_CHALLENGE_CHARS or not (challenge.isascii() and challenge.isalnum()):
        raise Refusal("hub.challenge must be letters and digits")
    return web.Response(text=challenge)


async def deliver(request: web.Request) -> web.Response:
    """POST: store a signed delivery at once; anything unsigned is refused and counted."""
    settings = request.app[CONFIG].facebook_webhook
    if settings is None:
        raise Refusal("Facebook webhooks are not configured", status=404)
    try:
        body = await read_body(request)
    except Refusal as refusal:
        # Counted as a delivery too: an oversized or cut-off body is one Facebook may have sent.
        _count(request, "too_large" if refusal.status == 413 else "malformed")
        raise
    secret = settings.app_secret.get_secret_value()
    if not signature_valid(secret, body, request.headers.get("X-Hub-Signature-256")):
        _count(request, "bad_signature")
        raise Refusal("bad or missing X-Hub-Signature-256", status=403)
    if is_instagram(body):
        return await deliver_instagram(request, body, _count)
    try:
        pages = parse_delivery(body)
    except MalformedDelivery as err:
        _count(request, "malformed")
        raise Refusal(f"malformed delivery: {err}") from err
    known = _page_sources(request)
    # Messenger events (entry[].messaging) go to the Page's Messenger source.
    messaging = parse_messaging(body)
    for page_id, changes in pages.items():
        name = known.get(page_id)
        if name is None:
            if page_id not in messaging:
                _count(request, "unknown_page")
            continue
        if page_id in messaging and changes == PageChanges():
            continue  # only Messenger events for this Page
        await _store(request, name, changes.batch({}), changes.reconcile)
    for _ in range(await route_messaging(request, messaging, _store)):
        _count(request, "unknown_page")
    _count(request, "accepted")
    return web.Response(text="EVENT_RECEIVED")


async def _store(request: web.Request, name: str, batch: Batch, reconcile: Collection[str]) -> None:
    """Store one source's part of a delivery; re-read what it could not say itself."""
    coordinator = request.app[COORDINATOR]
    try:
        await coordinator.ingest(name, batch)
    except Exception as err:
        # 500 makes Facebook deliver again (for up to 36 hours); the poll reconciles too.
        _count(request, "error")
        log.exception("webhook delivery could not be stored", source=name)
        raise web.HTTPInternalServerError(text="not stored, please retry\n") from err
    if reconcile:
        try:
            await coordinator.refetch_quietly(name, frozenset(reconcile))
        except Exception:
            # Stored already: answering 500 would only make Facebook send it again.
            log.exception("webhook re-read failed; the next poll reconciles", source=name)


def add_webhook_routes(app: web.Application) -> None:
    """Register /webhooks/facebook."""
    app.router.add_get(PATH, handshake)
    app.router.add_post(PATH, deliver)
