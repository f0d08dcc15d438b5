"""The queue page at `/` for the on-duty student, and the signed ack/dismiss links.

Access: a named token (`tokens add`, or [[http.api_tokens]]) with the read scope, kept in an
HttpOnly, SameSite=Strict cookie after the login form or a one-time `/?token=...` (which
redirects to `/` so the token does not stay in the address bar); it is looked up again on
every request, so a revoked token is out at once. The page's ack, dismiss and undo buttons
need the act scope and are plain forms with a CSRF field derived from the token; each is
audited under the token's name. Signed links from notifications (`/act/{id}/{action}`) need
no token: the signature is the permission, for that item and action, until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aiohttp import web

from monitor.alerts.actions import DISMISS_REASONS, ActionError
from monitor.audit import Actor, AuditLog
from monitor.web.access import Principal, open_to_anyone, origin, resolve
from monitor.web.edge import MAX_TEXT_CHARS, Refusal, secret_bytes
from monitor.web.edge import form as read_form
from monitor.web.edge import item_id as parse_item_id
from monitor.web.keys import ALERTS, CLOCK, STORE
from monitor.web.queue_render import (
    CSP,
    DutyLine,
    QueueEntry,
    confirm_page,
    login_page,
    message_page,
    queue_page,
)
from monitor.web.undo import PENDING, delayed_dismissals

COOKIE = "webcare_token"
LINK_ACTOR = "signed link"
COOKIE_MAX_AGE = 30 * 86400
# How far ahead the page looks for the next shift.
NEXT_SHIFT_HORIZON = timedelta(days=7)
# "Recently dismissed": the last day's dismissals, at most this many.
RECENT = timedelta(days=1)
RECENT_LIMIT = 20
_DIGITS = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-f]{1,64}")
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", headers=_HEADERS)


def _refuse(status: int, why: str, page: str) -> Refusal:
    """A refusal answered with one of our pages; `why` is the log line's reason."""
    return Refusal(why, status=status, response=_html(page, status=status))


def _field(form: Mapping[str, Any], name: str) -> str:
    """A form field as text ("" when absent, or a file instead of text)."""
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _see(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location, headers={"Cache-Control": "no-store"})


def csrf_token(token: str) -> str:
    """The form field that proves a POST came from our page (bound to the session's token)."""
    return hmac.new(b"webcare-monitor/csrf/v1", secret_bytes(token), hashlib.sha256).hexdigest()


async def _session(request: web.Request) -> tuple[str, Principal] | None:
    token = request.cookies.get(COOKIE, "")
    found = await resolve(request.app, token) if token else None
    return None if found is None else (token, found)


async def _can_read(request: web.Request, token: str) -> bool:
    found = await resolve(request.app, token)
    return found is not None and found.may("read")


def _disabled() -> Refusal:
    return _refuse(
        403,
        "the queue is disabled: no token is configured",
        message_page(
            "Queue disabled",
            "No access token is configured: `webcare-monitor tokens add`, or"
            " [[http.api_tokens]] in the config.",
        ),
    )


def _set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


async def queue(request: web.Request) -> web.StreamResponse:
    """GET /: the queue, or the login form (401) without a valid token."""
    if not await open_to_anyone(request.app):
        raise _disabled()
    given = request.query.get("token")
    if given is not None:
        if not await _can_read(request, given):
            raise _refuse(401, "invalid token", login_page(error="That token is not valid."))
        response = _see("/")
        _set_cookie(request, response, given)
        raise response
    session = await _session(request)
    if session is None:
        raise _refuse(401, "not logged in", login_page())
    token, match = session
    if not match.may("read"):
        raise _refuse(403, "no read scope", message_page("Not allowed", _lacks(match, "read")))
    return _html(await render_queue(request, match.brands, csrf_token(token)))


def _lacks(match: Principal, scope: str) -> str:
    return f"The token of {match.name} lacks the {scope} scope; ask for one that has it."


async def render_queue(
    request: web.Request, brands: frozenset[str] | None, csrf: str, notice: str | None = None
) -> str:
    """The page for a token that sees `brands` (None: all)."""
    service = request.app[ALERTS]
    store = request.app[STORE]
    now = request.app[CLOCK].now()
    sources = {
        name: ref for name, ref in service.sources.items() if brands is None or ref.brand in brands
    }
    cutoffs = {name: await service.historic_before(name) for name in sources}
    pending = request.app[PENDING].pending(brands)
    waiting = [i for i in await store.unanswered_items() if i.source in sources]
    current = []
    for item in waiting:
        cutoff = cutoffs[item.source]
        if cutoff is None or item.created_at >= cutoff:
            current.append(item)
    messages = await store.messages_by_id([i.message_id for i in current])
    followups = await service.outbox.followups([i.message_id for i in current])
    entries = []
    for item in current:
        stored = messages.get(item.message_id)
        state = (
            "breached" if item.due_at <= now else "warning" if item.warning_at <= now else "open"
        )
        follow = followups.get(item.message_id)
        entries.append(
            QueueEntry(
                item_id=item.message_id,
                brand=item.brand,
                source=item.source,
                platform=sources[item.source].platform,
                # The name is kept on the item while it waits; stored authors are pseudonyms.
                author=item.author_name,
                text=stored.message.text if stored else "",
                permalink=stored.message.permalink if stored else None,
                created_at=item.created_at,
                due_at=item.due_at,
                state=state,
                acked_by=follow.acked_by if follow is not None else None,
            )
        )
    # Most urgent first: the earliest due (so the longest overdue) at the top.
    entries.sort(key=lambda e: (e.due_at, e.created_at, e.item_id))
    roster = service.roster()
    lines: dict[tuple[object, ...], list[str]] = {}
    for name, ref in sorted(sources.items()):
        duty = roster.on_duty(now, brand=ref.brand, source=name)
        changes = roster.changes(now, now + NEXT_SHIFT_HORIZON, brand=ref.brand, source=name)
        nxt = changes[0] if changes else None
        key = (
            duty.student if duty else None,
            duty.backup if duty else None,
            duty.lead if duty else roster.lead,
            nxt[1].student if nxt else None,
            nxt[0] if nxt else None,
        )
        lines.setdefault(key, []).append(name)
    duty_lines = [
        DutyLine(
            sources=tuple(names),
            student=key[0],  # type: ignore[arg-type]
            backup=key[1],  # type: ignore[arg-type]
            lead=key[2],  # type: ignore[arg-type]
            next_student=key[3],  # type: ignore[arg-type]
            next_at=key[4],  # type: ignore[arg-type]
        )
        for key, names in lines.items()
    ]
    return queue_page(
        entries=[e for e in entries if e.item_id not in {p.item_id for p in pending}],
        pending=pending,
        duty=duty_lines,
        now=now,
        tz=roster.timezone,
        csrf=csrf,
        older=len(waiting) - len(current),
        notice=notice,
        dismissed=await AuditLog(store).entries(
            action="dismiss", brands=brands, since=now - RECENT, limit=RECENT_LIMIT
        ),
    )


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: check the token, keep it in a cookie, back to the queue."""
    if not await open_to_anyone(request.app):
        raise _disabled()
    form = await read_form(request)
    token = _field(form, "token")
    if len(token) > MAX_TEXT_CHARS or not await _can_read(request, token):
        raise _refuse(401, "invalid token", login_page(error="That token is not valid."))
    response = _see("/")
    _set_cookie(request, response, token)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout: forget the cookie."""
    response = _see("/")
    response.del_cookie(COOKIE, path="/")
    raise response


async def page_action(request: web.Request) -> web.StreamResponse:
    """POST /items/{id}/ack|dismiss|undo from the page's buttons (cookie + CSRF field)."""
    session = await _session(request)
    if session is None:
        raise _refuse(401, "not logged in", login_page(error="Please log in again."))
    token, match = session
    if not match.may("act"):
        raise _refuse(403, "no act scope", message_page("Not allowed", _lacks(match, "act")))
    form = await read_form(request)
    given = secret_bytes(_field(form, "csrf"))
    if not hmac.compare_digest(given, csrf_token(token).encode()):
        page = message_page("Not done", "The form was stale; reload the queue.")
        raise _refuse(403, "stale or missing CSRF field", page)
    action = request.match_info["action"]
    item_id = parse_item_id(request.match_info["item_id"])
    try:
        actions = request.app[ALERTS].actions
        item = await actions.item(item_id)
        if match.brands is not None and item.brand not in match.brands:
            raise ActionError(404, f"no item {item_id}")
        by, actor = match.name, match.actor(request)
        if action == "ack":
            await actions.ack(item_id, by=by, actor=actor)
        elif action == "undo":
            undone = request.app[PENDING].undo(item_id)
            if undone is None:
                why = "it is dismissed already" if item.state.value == "dismissed" else "none waits"
                raise ActionError(409, f"nothing to undo for item {item_id}: {why}")
            await actions.record_undo(item_id, reason=undone.reason, actor=actor)
        else:
            # Done in UNDO_SECONDS unless undone; checked now, so a refusal is seen at once.
            reason = _field(form, "reason")
            if reason not in DISMISS_REASONS:
                raise ActionError(400, f"choose a reason: {', '.join(DISMISS_REASONS)}")
            if not item.state.is_unanswered:
                raise ActionError(409, f"item {item_id} is {item.state.value}: not dismissed")
            request.app[PENDING].schedule(
                item_id, reason=reason, by=by, brand=item.brand, actor=actor
            )
    except ActionError as err:
        raise _refuse(err.status, str(err), message_page("Not done", str(err))) from err
    raise _see("/" if action == "dismiss" else f"/#item-{item_id}")


async def signed_link(request: web.Request) -> web.StreamResponse:
    """GET shows a confirmation, POST does it: /act/{id}/ack|dismiss?exp=&sig= from a notice."""
    service = request.app[ALERTS]
    links = service.links
    action = request.match_info["action"]
    item_id = parse_item_id(request.match_info["item_id"])
    now = request.app[CLOCK].now()
    expires, sig = request.query.get("exp", ""), request.query.get("sig", "")
    # exp is Unix seconds and sig hex: anything else is refused before any arithmetic.
    well_formed = _DIGITS.fullmatch(expires) is not None and _HEX.fullmatch(sig) is not None
    if links is None or not well_formed or not links.verify(action, item_id, expires, sig, now=now):
        raise _refuse(
            403,
            "link not valid or expired",
            message_page("Link not valid", "This link is not valid or has expired."),
        )
    try:
        item = await service.actions.item(item_id)
    except ActionError as err:
        raise _refuse(err.status, str(err), message_page("Not found", str(err))) from err
    if request.method == "GET":
        stored = (await request.app[STORE].messages_by_id([item_id])).get(item_id)
        return _html(
            confirm_page(
                action=action,
                item_id=item_id,
                excerpt=stored.message.text if stored else "",
                author=item.author_name,
            )
        )
    form = await read_form(request)
    try:
        if action == "ack":
            await service.actions.ack(item_id, by="link", actor=_link_actor(request))
            done = f"Item {item_id} is acknowledged: no more escalation or reminders."
        else:
            reason = _field(form, "reason")
            if reason not in DISMISS_REASONS:
                raise ActionError(400, f"reason must be one of {', '.join(DISMISS_REASONS)}")
            await service.actions.dismiss(
                item_id, reason=reason, by="link", actor=_link_actor(request)
            )
            done = f"Item {item_id} is dismissed ({reason})."
    except ActionError as err:
        raise _refuse(err.status, str(err), message_page("Not done", str(err))) from err
    del item
    return _html(message_page("Done", done))


def _link_actor(request: web.Request) -> Actor:
    # The link names no person (one notification goes to a whole channel): its signature is
    # the permission, so the audit says a signed link did it, and from where.
    return Actor(name=LINK_ACTOR, via="token", origin=origin(request))


def add_queue_routes(app: web.Application) -> None:
    """Register the queue page, its login and buttons, and the signed links."""
    app.cleanup_ctx.append(delayed_dismissals)
    app.router.add_get("/", queue)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_post(r"/items/{item_id}/{action:ack|dismiss|undo}", page_action)
    app.router.add_route("GET", r"/act/{item_id}/{action:ack|dismiss}", signed_link)
    app.router.add_route("POST", r"/act/{item_id}/{action:ack|dismiss}", signed_link)
