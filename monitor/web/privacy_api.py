"""POST /api/v1/privacy/export and /api/v1/privacy/erase: a consumer's rights over HTTP.

For a data-protection officer with an `admin` token for every brand: the same JSON as
`webcare-monitor privacy export`, and the counts of `privacy erase`, each recorded once in
the audit under the token's holder (counts only, as the CLI records them).

Both are POST with the author in the body (form or JSON), never in the URL: query strings
end up in the access logs of proxies in front of the service, and no log line of ours names
the person (a refusal's line says what was wrong, never the value).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from monitor.audit import erasure_entry, privacy_counts, record_privacy
from monitor.privacy import erase_author, export_author
from monitor.web.access import Principal, authenticate
from monitor.web.edge import Refusal, json_object, text_field
from monitor.web.edge import body as read_body
from monitor.web.edge import form as read_form
from monitor.web.keys import CLOCK, CONFIG, STORE

# What a consumer posted, and who they are: never kept by a cache.
_NO_STORE = {"Cache-Control": "no-store"}
_FIELD = "author"


async def _admin(request: web.Request) -> Principal:
    """The holder of an admin token for every brand (a person's data spans brands)."""
    token = await authenticate(request, ("admin",))
    if token.brands is not None:
        raise Refusal(
            f"the token of {token.name!r} is limited to some brands; a consumer's data spans"
            " brands: use an admin token for all brands ('*')",
            status=403,
        )
    return token


async def _author(request: web.Request) -> str:
    """The body's author (form or JSON): a platform id, user name or pseudonym."""
    if _FIELD in request.query:
        raise Refusal(f"send {_FIELD} in the body (form or JSON), not in the URL")
    values: Any
    if request.content_type == "application/json":
        values = json_object(await read_body(request))
    else:
        values = await read_form(request)
    author = text_field(values, _FIELD)
    if author is None or not author.strip():
        raise Refusal(
            f"{_FIELD} is required: the consumer's platform id, user name or pseudonym (p:...)"
        )
    return author


async def export(request: web.Request) -> web.Response:
    """POST /api/v1/privacy/export author=...: everything held on a person (the CLI's JSON)."""
    token = await _admin(request)
    author = await _author(request)
    app = request.app
    now = app[CLOCK].now()
    found = await export_author(app[STORE], app[CONFIG], author)
    await record_privacy(app[STORE], "export", found, actor=token.actor(request), at=now)
    return web.Response(
        text=json.dumps(found, indent=2, ensure_ascii=False) + "\n",
        content_type="application/json",
        headers=_NO_STORE,
    )


async def erase(request: web.Request) -> web.Response:
    """POST /api/v1/privacy/erase author=...: their text and identity gone; the counts."""
    token = await _admin(request)
    author = await _author(request)
    app = request.app
    now = app[CLOCK].now()
    entry = erasure_entry(app[STORE], actor=token.actor(request), at=now)
    done = await erase_author(app[STORE], app[CONFIG], author, now, entry)
    return web.json_response(privacy_counts(done), headers=_NO_STORE)


def add_privacy_routes(app: web.Application) -> None:
    """Register /api/v1/privacy/export and /api/v1/privacy/erase."""
    app.router.add_post("/api/v1/privacy/export", export)
    app.router.add_post("/api/v1/privacy/erase", erase)
