"""GET /api/v1/audit: the audit trail, as JSON or CSV, for a read or admin token.

A read token sees the entries of its brands; an admin token sees every entry, including
those without a brand (token changes, config reloads).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Literal, NoReturn

from aiohttp import web
from multidict import MultiMapping

from monitor.audit import ACTIONS, AuditLog, to_csv, to_json
from monitor.report import parse_instant
from monitor.web.access import Principal, authenticate
from monitor.web.keys import STORE

_NO_STORE = {"Cache-Control": "no-store"}
MAX_LIMIT = 10_000


def _bad_request(message: str) -> NoReturn:
    raise web.HTTPBadRequest(
        text=json.dumps({"error": message}), content_type="application/json", headers=_NO_STORE
    )


def _instant(query: MultiMapping[str], name: str) -> datetime | None:
    text = query.get(name, "").strip()
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError as err:
        _bad_request(f"{name}: {err}")


def _int(query: MultiMapping[str], name: str, default: int | None) -> int | None:
    text = query.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or len(text) > 12:
        _bad_request(f"{name} must be a whole number")
    return int(text)


def _visible(token: Principal) -> Collection[str] | Literal["*"] | None:
    if token.may("admin"):
        return None
    return "*" if token.brands is None else token.brands


async def audit(request: web.Request) -> web.Response:
    """GET /api/v1/audit?since=&until=&actor=&action=&item=&brand=&limit=&format=json|csv."""
    token = await authenticate(request, ("read", "admin"))
    query = request.query
    action = query.get("action") or None
    if action is not None and action not in ACTIONS:
        _bad_request(f"action must be one of {', '.join(ACTIONS)}")
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        _bad_request("format must be json or csv")
    limit = _int(query, "limit", 1000) or 1000
    entries = await AuditLog(request.app[STORE]).entries(
        since=_instant(query, "since"),
        until=_instant(query, "until"),
        actor=query.get("actor") or None,
        action=action,
        item_id=_int(query, "item", None),
        brand=query.get("brand") or None,
        brands=_visible(token),
        limit=min(limit, MAX_LIMIT),
    )
    if fmt == "csv":
        return web.Response(text=to_csv(entries), content_type="text/csv", headers=_NO_STORE)
    return web.Response(text=to_json(entries), content_type="application/json", headers=_NO_STORE)


def add_audit_routes(app: web.Application) -> None:
    """Register /api/v1/audit."""
    app.router.add_get("/api/v1/audit", audit)
