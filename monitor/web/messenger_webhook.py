"""Messenger events in a Page delivery on /webhooks/facebook, routed to Messenger sources."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from aiohttp import web

from monitor.domain import Batch
from monitor.sources.facebook_webhook import PageChanges
from monitor.sources.messenger import MessengerSource
from monitor.web.keys import COORDINATOR

# Stores one source's batch and re-reads the listed threads: the Page webhook's own path.
Store = Callable[[web.Request, str, Batch, Collection[str]], Awaitable[None]]


def messenger_pages(request: web.Request) -> dict[str, str]:
    """Page id -> Messenger source name."""
    return {
        entry.source.page_numeric_id: name
        for name, entry in request.app[COORDINATOR].sources.items()
        if isinstance(entry.source, MessengerSource)
    }


async def route_messaging(request: web.Request, pages: dict[str, PageChanges], store: Store) -> int:
    """Store each Page's Messenger events with its source; how many Pages had none."""
    known = messenger_pages(request)
    unknown = 0
    for page_id, conversations in pages.items():
        name = known.get(page_id)
        if name is None:
            unknown += 1
            continue
        await store(request, name, conversations.batch({}), conversations.reconcile)
    return unknown
