"""/api/v1/report and /api/v1/items: the report as JSON, behind per-brand bearer tokens."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from aiohttp import web
from multidict import MultiMapping

from monitor.domain import ItemState
from monitor.report import ALL, ReportKind, build, build_items_report, check_window, parse_instant
from monitor.store.reports import report_items
from monitor.web.keys import CLOCK, CONFIG, STORE

# The /items window when none is given: everything ever stored (the query leaves it open).
OPEN_SINCE = datetime(1970, 1, 1, tzinfo=UTC)
OPEN_UNTIL = datetime(9999, 1, 1, tzinfo=UTC)
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no", ""})
_UNANSWERED = frozenset(s for s in ItemState if s.is_unanswered)
# Consumers' names and words: never kept by a shared cache.
_NO_STORE = {"Cache-Control": "no-store"}


def _fail(error: type[web.HTTPError], message: str, **headers: str) -> NoReturn:
    raise error(
        text=json.dumps({"error": message}),
        content_type="application/json",
        headers={**_NO_STORE, **headers},
    )


def _bad_request(message: str) -> NoReturn:
    _fail(web.HTTPBadRequest, message)


def authorized_brands(request: web.Request) -> frozenset[str] | None:
    """Brands the request's bearer token may see (None: all), or raise 401/403."""
    tokens = request.app[CONFIG].http.api_tokens
    if not tokens:
        _fail(
            web.HTTPForbidden,
            "the API is disabled: no token is configured ([[http.api_tokens]] in the config)",
        )
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="webcare-monitor"'}
    if scheme.lower() != "bearer" or not presented.strip():
        _fail(web.HTTPUnauthorized, "a bearer token is required", **challenge)
    given = presented.strip().encode()
    brands: set[str] = set()
    matched = False
    # Compare against every token (no early exit) so timing tells nothing about which matched.
    for token in tokens:
        if hmac.compare_digest(token.token.get_secret_value().encode(), given):
            matched = True
            brands.update(token.brands)
    if not matched:
        _fail(web.HTTPUnauthorized, "invalid token", **challenge)
    return None if ALL in brands else frozenset(brands)


def _instant(query: MultiMapping[str], name: str) -> datetime | None:
    text = query.get(name)
    if text is None or not text.strip():
        return None
    try:
        return parse_instant(text)
    except ValueError as err:
        _bad_request(f"{name}: {err}")


def _window(query: MultiMapping[str]) -> tuple[datetime | None, datetime | None]:
    """since/until as given (None when absent), checked to form a non-empty window."""
    since, until = _instant(query, "since"), _instant(query, "until")
    try:
        check_window(since or OPEN_SINCE, until or OPEN_UNTIL)
    except ValueError as err:
        _bad_request(str(err))
    return since, until


def _required_window(query: MultiMapping[str]) -> tuple[datetime, datetime]:
    since, until = _window(query)
    if since is None or until is None:
        _bad_request("since and until are required (ISO 8601, e.g. 2026-11-16T00:00:00Z)")
    return since, until


def _scope(
    request: web.Request, allowed: frozenset[str] | None
) -> tuple[str | None, frozenset[str] | None, dict[str, str]]:
    """(brand asked for, brands to query, visible sources) for this token and query."""
    config = request.app[CONFIG]
    brand = request.query.get("brand") or None
    if brand is not None:
        if allowed is not None and brand not in allowed:
            _fail(web.HTTPForbidden, f"this token may not read brand {brand!r}")
        if brand not in {s.brand for s in config.sources}:
            _bad_request(f"unknown brand {brand!r}")
    brands = frozenset({brand}) if brand is not None else allowed
    sources = {s.name: s.brand for s in config.sources if brands is None or s.brand in brands}
    return brand, brands, sources


def _flag(query: MultiMapping[str], name: str) -> bool:
    value = query.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    _bad_request(f"{name} must be 1 or 0")


def _json(body: Mapping[str, Any]) -> web.Response:
    return web.json_response(body, headers=_NO_STORE)


async def report(request: web.Request) -> web.Response:
    """GET /api/v1/report?since=&until=[&brand=][&by=moderator][&items=1]: the CLI's JSON."""
    allowed = authorized_brands(request)
    query = request.query
    since, until = _required_window(query)
    by = query.get("by")
    if by not in (None, "", "moderator"):
        _bad_request("by must be 'moderator'")
    listing = _flag(query, "items")
    if listing and by:
        _bad_request("use either by=moderator or items=1, not both")
    kind: ReportKind = "items" if listing else "moderator" if by else "summary"
    brand, brands, sources = _scope(request, allowed)
    items = await report_items(request.app[STORE], since=since, until=until, brands=brands)
    as_of = request.app[CLOCK].now()
    result = build(kind, items, since=since, until=until, as_of=as_of, brand=brand, sources=sources)
    return _json(result.to_json())


def _states(query: MultiMapping[str]) -> frozenset[ItemState] | None:
    """state=open,warning or state=open&state=warning; None when not given."""
    names = [n.strip() for value in query.getall("state", []) for n in value.split(",")]
    names = [n for n in names if n]
    if not names:
        return None
    try:
        return frozenset(ItemState(n) for n in names)
    except ValueError:
        valid = ", ".join(s.value for s in ItemState)
        _bad_request(f"state must be one of {valid}")


async def items(request: web.Request) -> web.Response:
    """GET /api/v1/items?state=...[&since=&until=][&brand=]: items as in `report --items`."""
    allowed = authorized_brands(request)
    since, until = _window(request.query)
    states = _states(request.query)
    brand, brands, _sources = _scope(request, allowed)
    stored: frozenset[ItemState] | None = None
    if states is not None:
        # The stored state of an unanswered item lags its deadlines: fetch every unanswered
        # state and judge open/warning/breached as of now.
        stored = frozenset(s for s in states if not s.is_unanswered)
        if states & _UNANSWERED:
            stored |= _UNANSWERED
    found = await report_items(
        request.app[STORE], since=since, until=until, brands=brands, stored_states=stored
    )
    result = build_items_report(
        found,
        since=since or OPEN_SINCE,
        until=until or OPEN_UNTIL,
        as_of=request.app[CLOCK].now(),
        brand=brand,
        states=states,
    )
    return _json(result.to_json())


def add_api_routes(app: web.Application) -> None:
    """Register /api/v1/report and /api/v1/items."""
    app.router.add_get("/api/v1/report", report)
    app.router.add_get("/api/v1/items", items)
