"""/api/v1/report, /api/v1/campaign, /api/v1/items and the item actions, behind named, scoped
bearer tokens."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from aiohttp import web
from multidict import MultiMapping

from monitor.alerts.actions import DISMISS_REASONS, ActionError, ActionResult
from monitor.campaign import campaign_tag
from monitor.domain import ItemState
from monitor.report import ReportKind, build, build_items_report, check_window, parse_instant
from monitor.store.campaigns import campaign_report
from monitor.store.reports import report_items
from monitor.store.windows import windowed_sources
from monitor.web.access import Principal, authenticate
from monitor.web.audit_api import add_audit_routes
from monitor.web.edge import body as read_body
from monitor.web.edge import form as read_form
from monitor.web.edge import item_id as parse_item_id
from monitor.web.edge import json_object, text_field
from monitor.web.keys import ALERTS, CLOCK, CONFIG, STORE
from monitor.web.privacy_api import add_privacy_routes

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


async def authorized(request: web.Request, scope: str = "read") -> Principal:
    """The request's bearer token holder, if it carries `scope`; else raise 401/403."""
    return await authenticate(request, (scope,))


async def authorized_brands(request: web.Request) -> frozenset[str] | None:
    """Brands the request's read token may see (None: all), or raise 401/403."""
    return (await authorized(request)).brands


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
    allowed = await authorized_brands(request)
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
    store = request.app[STORE]
    items = await report_items(store, since=since, until=until, brands=brands)
    as_of = request.app[CLOCK].now()
    result = build(
        kind,
        items,
        since=since,
        until=until,
        as_of=as_of,
        brand=brand,
        sources=sources,
        windowed=await windowed_sources(store, sources),
    )
    return _json(result.to_json())


async def campaign(request: web.Request) -> web.Response:
    """GET /api/v1/campaign?tag=&since=&until=[&brand=]: `report --campaign`'s JSON."""
    allowed = await authorized_brands(request)
    query = request.query
    since, until = _required_window(query)
    try:
        tag = campaign_tag(query.get("tag", ""))
    except ValueError as err:
        _bad_request(str(err))
    brand, brands, _ = _scope(request, allowed)
    if brand is None and brands is not None:
        # The campaign query reads one brand or all: a token of several names the one it means.
        if len(brands) != 1:
            _bad_request("this token reads several brands: name one with brand=")
        (brand,) = brands
    result = await campaign_report(
        request.app[STORE],
        tag=tag,
        since=since,
        until=until,
        as_of=request.app[CLOCK].now,
        brand=brand,
    )
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
    allowed = await authorized_brands(request)
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


def action_json(result: ActionResult) -> dict[str, Any]:
    """The item after an ack or dismissal."""
    item, followup = result.item, result.followup
    return {
        "id": item.message_id,
        "brand": item.brand,
        "source": item.source,
        "state": item.state.value,
        "dismissed_reason": item.dismissed_reason,
        "due_at": item.due_at.isoformat().replace("+00:00", "Z"),
        "acked_at": (
            followup.acked_at.isoformat().replace("+00:00", "Z")
            if followup is not None and followup.acked_at is not None
            else None
        ),
        "acked_by": followup.acked_by if followup is not None else None,
        "changed": result.changed,
    }


async def _action_body(request: web.Request) -> Mapping[str, Any]:
    """An optional JSON object or form body; the query string fills in what it lacks."""
    values: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            values.update(json_object(await read_body(request)))
        else:
            values.update(await read_form(request))
    return values


async def _visible_item(request: web.Request, brands: frozenset[str] | None) -> int:
    item_id = parse_item_id(request.match_info["item_id"])
    try:
        item = await request.app[ALERTS].actions.item(item_id)
    except ActionError as err:
        _fail(web.HTTPNotFound, str(err))
    if brands is not None and item.brand not in brands:
        # Not 403: another brand's item ids are not even confirmed to exist.
        _fail(web.HTTPNotFound, f"no item {item_id}")
    return item_id


def _by(body: Mapping[str, Any], token: Principal) -> str:
    """Who is shown as acting: the body's "by", else the token's holder (the audit: the holder)."""
    return text_field(body, "by") or token.name


def _action_failed(err: ActionError) -> NoReturn:
    error = {400: web.HTTPBadRequest, 404: web.HTTPNotFound}.get(err.status, web.HTTPConflict)
    _fail(error, str(err))


async def ack_item(request: web.Request) -> web.Response:
    """POST /api/v1/items/{id}/ack [{"by": "name"}]: stop escalation, keep the SLA clock."""
    token = await authorized(request, "act")
    item_id = await _visible_item(request, token.brands)
    body = await _action_body(request)
    by = _by(body, token)
    try:
        result = await request.app[ALERTS].actions.ack(item_id, by=by, actor=token.actor(request))
    except ActionError as err:
        _action_failed(err)
    return _json(action_json(result))


async def dismiss_item(request: web.Request) -> web.Response:
    """POST /api/v1/items/{id}/dismiss {"reason": "no_reply_needed"|"spam"|"duplicate"}."""
    token = await authorized(request, "act")
    item_id = await _visible_item(request, token.brands)
    body = await _action_body(request)
    reason = body.get("reason")
    if not isinstance(reason, str) or reason not in DISMISS_REASONS:
        _bad_request(f"reason must be one of {', '.join(DISMISS_REASONS)}")
    by = _by(body, token)
    try:
        result = await request.app[ALERTS].actions.dismiss(
            item_id, reason=reason, by=by, actor=token.actor(request)
        )
    except ActionError as err:
        _action_failed(err)
    return _json(action_json(result))


def add_api_routes(app: web.Application) -> None:
    """Register /api/v1/report, /api/v1/items, the item actions, /api/v1/audit and
    /api/v1/privacy/{export,erase}."""
    app.router.add_get("/api/v1/report", report)
    app.router.add_get("/api/v1/campaign", campaign)
    app.router.add_get("/api/v1/items", items)
    app.router.add_post("/api/v1/items/{item_id}/ack", ack_item)
    app.router.add_post("/api/v1/items/{item_id}/dismiss", dismiss_item)
    add_audit_routes(app)
    add_privacy_routes(app)
