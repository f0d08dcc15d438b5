"""/webhooks/facebook: the subscription handshake and signed `feed` deliveries."""

from __future__ import annotations

import hmac

from aiohttp import web

from monitor.logging import get_logger
from monitor.sources.facebook import FacebookPageSource
from monitor.sources.facebook_webhook import MalformedDelivery, parse_delivery, signature_valid
from monitor.web.keys import CONFIG, COORDINATOR, METRICS

log = get_logger("monitor.web.facebook_webhook")
PATH = "/webhooks/facebook"


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
        raise web.HTTPNotFound(text="Facebook webhooks are not configured\n")
    query = request.query
    expected = settings.verify_token.get_secret_value().encode()
    given = query.get("hub.verify_token", "").encode()
    if query.get("hub.mode") == "subscribe" and hmac.compare_digest(expected, given):
        return web.Response(text=query.get("hub.challenge", ""))
    log.warning("webhook handshake refused", mode=query.get("hub.mode"))
    raise web.HTTPForbidden(text="verify token mismatch\n")


async def deliver(request: web.Request) -> web.Response:
    """POST: store a signed delivery at once; anything unsigned is refused and counted."""
    settings = request.app[CONFIG].facebook_webhook
    if settings is None:
        raise web.HTTPNotFound(text="Facebook webhooks are not configured\n")
    body = await request.read()
    secret = settings.app_secret.get_secret_value()
    if not signature_valid(secret, body, request.headers.get("X-Hub-Signature-256")):
        _count(request, "bad_signature")
        log.warning("webhook refused: bad or missing signature", peer=request.remote)
        raise web.HTTPForbidden(text="bad signature\n")
    try:
        pages = parse_delivery(body)
    except MalformedDelivery as err:
        _count(request, "malformed")
        log.warning("webhook refused: malformed delivery", error=str(err))
        raise web.HTTPBadRequest(text=f"malformed delivery: {err}\n") from err
    coordinator = request.app[COORDINATOR]
    known = _page_sources(request)
    for page_id, changes in pages.items():
        name = known.get(page_id)
        if name is None:
            _count(request, "unknown_page")
            continue
        try:
            await coordinator.ingest(name, changes.batch({}))
        except Exception as err:
            # 500 makes Facebook deliver again (for up to 36 hours); the poll reconciles too.
            _count(request, "error")
            log.exception("webhook delivery could not be stored", source=name)
            raise web.HTTPInternalServerError(text="not stored, please retry\n") from err
        if changes.reconcile:
            await coordinator.refetch_quietly(name, frozenset(changes.reconcile))
    _count(request, "accepted")
    return web.Response(text="EVENT_RECEIVED")


def add_webhook_routes(app: web.Application) -> None:
    """Register /webhooks/facebook."""
    app.router.add_get(PATH, handshake)
    app.router.add_post(PATH, deliver)
