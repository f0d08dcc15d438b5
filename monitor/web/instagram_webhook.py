"""Instagram deliveries on /webhooks/facebook: each changed media re-read by its source."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from monitor.logging import get_logger
from monitor.sources.facebook_webhook import MalformedDelivery
from monitor.sources.instagram import InstagramSource
from monitor.sources.instagram_webhook import media_to_reread
from monitor.web.edge import Refusal
from monitor.web.keys import COORDINATOR

log = get_logger("monitor.web.instagram_webhook")


async def deliver_instagram(
    request: web.Request, body: bytes, count: Callable[[web.Request, str], None]
) -> web.Response:
    """Re-read the media a signed `instagram` delivery names; 500 (redelivery) if that fails."""
    try:
        accounts = media_to_reread(body)
    except MalformedDelivery as err:
        count(request, "malformed")
        raise Refusal(f"malformed delivery: {err}") from err
    coordinator = request.app[COORDINATOR]
    known = {
        entry.source.ig_user_id: name
        for name, entry in coordinator.sources.items()
        if isinstance(entry.source, InstagramSource)
    }
    for account, media in accounts.items():
        name = known.get(account)
        if name is None:
            count(request, "unknown_page")
            continue
        if not media:
            continue
        try:
            await coordinator.refetch(name, frozenset(media))
        except Exception as err:
            # The delivery says nothing we could store ourselves: Meta redelivers on a 500.
            count(request, "error")
            log.exception("instagram delivery could not be re-read", source=name)
            raise web.HTTPInternalServerError(text="not stored, please retry\n") from err
    count(request, "accepted")
    return web.Response(text="EVENT_RECEIVED")
