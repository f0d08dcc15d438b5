"""Who is asking: a presented token resolved to a named, scoped principal.

Tokens come from the database (`tokens add`, stored hashed, looked up on every request so a
revoked one is refused at once) or from the config's [[http.api_tokens]].
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import NoReturn

from aiohttp import web

from monitor.audit import ALL_BRANDS, Actor, AuditLog, Tokens
from monitor.web.edge import secret_bytes
from monitor.web.keys import CLOCK, CONFIG, STORE

# A config token without a name: shown as this in the audit.
CONFIG_TOKEN = "config token"


@dataclass(frozen=True, kw_only=True)
class Principal:
    """The person or system behind a token: its name, scopes and brands (None: all)."""

    name: str
    scopes: frozenset[str]
    brands: frozenset[str] | None

    def may(self, scope: str) -> bool:
        """Whether the token carries `scope`."""
        return scope in self.scopes

    def actor(self, request: web.Request) -> Actor:
        """This principal acting through `request` (its client address as the origin)."""
        return Actor(name=self.name, via="token", origin=origin(request))


def origin(request: web.Request) -> str | None:
    """The client address (no proxy is trusted: X-Forwarded-For is not read)."""
    return request.remote


def tokens(app: web.Application) -> Tokens:
    """The named tokens of the app's store."""
    store = app[STORE]
    return Tokens(store, AuditLog(store))


def _from_config(app: web.Application, given: bytes) -> Principal | None:
    brands: set[str] = set()
    scopes: set[str] = set()
    names: list[str] = []
    matched = False
    # Compare against every token (no early exit) so timing tells nothing about which matched.
    for token in app[CONFIG].http.api_tokens:
        if hmac.compare_digest(token.token.get_secret_value().encode(), given):
            matched = True
            brands.update(token.brands)
            scopes.update(token.scopes)
            if token.name:
                names.append(token.name)
    if not matched:
        return None
    return Principal(
        name=names[0] if names else CONFIG_TOKEN,
        scopes=frozenset(scopes),
        brands=None if ALL_BRANDS in brands else frozenset(brands),
    )


async def resolve(app: web.Application, presented: str) -> Principal | None:
    """The principal holding `presented`, or None (unknown, or revoked)."""
    given = secret_bytes(presented.strip())
    if not given:
        return None
    found = _from_config(app, given)
    if found is not None:
        return found
    record = await tokens(app).lookup(presented.strip(), now=app[CLOCK].now())
    if record is None:
        return None
    return Principal(
        name=record.name,
        scopes=frozenset(record.scopes),
        brands=None if ALL_BRANDS in record.brands else frozenset(record.brands),
    )


async def open_to_anyone(app: web.Application) -> bool:
    """Whether any token, configured or added, can get in (else the API is disabled)."""
    return bool(app[CONFIG].http.api_tokens) or await tokens(app).any_live()


# Every 401 says how to get in.
_HOW = (
    "send 'Authorization: Bearer <token>' with a token from `webcare-monitor tokens add`"
    " or [[http.api_tokens]] in the config"
)


def _fail(error: type[web.HTTPError], message: str, **headers: str) -> NoReturn:
    raise error(
        text=json.dumps({"error": message}),
        content_type="application/json",
        headers={"Cache-Control": "no-store", **headers},
    )


async def authenticate(request: web.Request, any_of: Collection[str]) -> Principal:
    """The bearer token's holder, if it carries one of the scopes `any_of`; else 401/403."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="webcare-monitor"'}
    found = None
    if scheme.lower() == "bearer" and presented.strip():
        found = await resolve(request.app, presented)
    if found is None and not await open_to_anyone(request.app):
        _fail(
            web.HTTPForbidden,
            "the API is disabled: no token is configured"
            " ([[http.api_tokens]] in the config, or `webcare-monitor tokens add`)",
        )
    if scheme.lower() != "bearer" or not presented.strip():
        _fail(web.HTTPUnauthorized, f"a bearer token is required: {_HOW}", **challenge)
    if found is None:
        _fail(web.HTTPUnauthorized, f"invalid token: {_HOW} (unknown or revoked)", **challenge)
    if not any(found.may(scope) for scope in any_of):
        wanted = " or ".join(repr(s) for s in any_of)
        _fail(web.HTTPForbidden, f"the token of {found.name!r} lacks the {wanted} scope")
    return found
