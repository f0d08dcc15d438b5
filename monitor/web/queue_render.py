"""HTML for the queue page: server-rendered, no scripts, readable on a phone.

Everything shown that comes from consumers or config goes through html.escape; the page
carries no JavaScript at all (a meta refresh reloads it), so a strict Content-Security-Policy
can forbid scripts entirely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from monitor.alerts.actions import DISMISS_REASONS
from monitor.alerts.formats import clean_text
from monitor.durations import spoken_duration

if TYPE_CHECKING:
    from monitor.audit import AuditEntry
    from monitor.web.undo import PendingDismissal

REFRESH_SECONDS = 30
REASON_LABELS = {
    "no_reply_needed": "No reply needed",
    "spam": "Spam",
    "duplicate": "Duplicate",
}
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

_STYLE = """
body{font:16px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;
color:#1d2330}
header{background:#1d2330;color:#fff;padding:.8rem 1rem}
header h1{font-size:1.2rem;margin:0}
header p{margin:.2rem 0 0;font-size:.85rem;opacity:.8}
main{max-width:46rem;margin:0 auto;padding:.6rem}
.duty{background:#fff;border-radius:.5rem;padding:.6rem .8rem;margin:.5rem 0}
.duty b{font-size:1.05rem}
.card{background:#fff;border-radius:.5rem;padding:.7rem .8rem;margin:.6rem 0;
border-left:.4rem solid #9aa3b2}
.card.breached{border-left-color:#d0312d}.card.warning{border-left-color:#e8a317}
.card.open{border-left-color:#2e8540}
.when{font-weight:700}.breached .when{color:#b3261e}.warning .when{color:#8a5a00}
.meta{font-size:.85rem;color:#5a6372}
.text{margin:.4rem 0;white-space:pre-wrap;overflow-wrap:anywhere}
.acked{font-size:.85rem;color:#1f6fb2;font-weight:600}
.actions{display:flex;flex-wrap:wrap;gap:.4rem;margin-top:.4rem}
.actions form{display:flex;gap:.3rem;margin:0}
button,select,input{font:inherit;padding:.45rem .7rem;border-radius:.4rem;border:1px solid #9aa3b2}
button{background:#1f6fb2;color:#fff;border-color:#1f6fb2;min-height:2.6rem}
button.secondary{background:#fff;color:#1d2330}
.empty{text-align:center;padding:2rem;color:#5a6372}
.login{max-width:22rem;margin:3rem auto;background:#fff;padding:1rem;border-radius:.5rem}
.login input{width:100%;box-sizing:border-box;margin:.5rem 0}
.error{color:#b3261e}
a{color:#1f6fb2}
"""


@dataclass(frozen=True, kw_only=True)
class QueueEntry:
    """One waiting item as the page shows it."""

    item_id: int
    brand: str
    source: str
    platform: str
    author: str | None
    text: str
    permalink: str | None
    created_at: datetime
    due_at: datetime
    state: str  # open | warning | breached, judged now
    acked_by: str | None


@dataclass(frozen=True, kw_only=True)
class DutyLine:
    """Who is on duty for some sources now, and who comes next."""

    sources: tuple[str, ...]
    student: str | None
    backup: str | None
    lead: str | None
    next_student: str | None
    next_at: datetime | None


def _page(title: str, body: str, *, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _local(moment: datetime, tz: ZoneInfo, now: datetime) -> str:
    local = moment.astimezone(tz)
    # With the zone's abbreviation: on the autumn night 02:20 CET comes after 02:50 CEST.
    if local.date() == now.astimezone(tz).date():
        return local.strftime("%H:%M %Z")
    return local.strftime("%a %d %b %H:%M %Z")


def _when(entry: QueueEntry, now: datetime) -> str:
    left = entry.due_at - now
    if left <= timedelta(0):
        return f"Overdue by {spoken_duration(-left)}"
    return f"{spoken_duration(left)} left"


def _card(entry: QueueEntry, now: datetime, tz: ZoneInfo, csrf: str) -> str:
    author = escape(clean_text(entry.author, 100) or "A consumer")
    text = escape(clean_text(entry.text, 500) or "(no text)")
    link = ""
    if entry.permalink and entry.permalink.lower().startswith(("http://", "https://")):
        link = f' · <a href="{escape(entry.permalink)}" rel="noopener noreferrer">open post</a>'
    acked = ""
    ack_form = ""
    if entry.acked_by:
        acked = (
            f'<div class="acked">Acknowledged by {escape(clean_text(entry.acked_by, 100))}</div>'
        )
    else:
        ack_form = (
            f'<form method="post" action="/items/{entry.item_id}/ack">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<button type="submit" class="ack">Ack</button></form>'
        )
    dismiss_form = (
        f'<form method="post" action="/items/{entry.item_id}/dismiss">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f"{_reason_select()}"
        f'<button type="submit" class="secondary dismiss">Dismiss</button></form>'
    )
    return (
        f'<article class="card {escape(entry.state)}" id="item-{entry.item_id}"'
        f' data-item="{entry.item_id}" data-state="{escape(entry.state)}">'
        f'<div class="when">{escape(_when(entry, now))}</div>'
        f'<div class="meta">{escape(entry.source)} ({escape(entry.brand)}) · {author} · '
        f"posted {escape(_local(entry.created_at, tz, now))}, due "
        f"{escape(_local(entry.due_at, tz, now))}{link}</div>"
        f'<p class="text">{text}</p>{acked}'
        f'<div class="actions">{ack_form}{dismiss_form}</div></article>'
    )


def _duty(line: DutyLine, now: datetime, tz: ZoneInfo) -> str:
    if line.student is None:
        now_text = "<b>Nobody is on duty</b> (roster gap)"
        if line.lead:
            now_text += f" · lead {escape(line.lead)}"
    else:
        extra = [
            f"{role} {escape(name)}"
            for role, name in (("backup", line.backup), ("lead", line.lead))
            if name
        ]
        now_text = f'On duty: <b class="on-duty">{escape(line.student)}</b>'
        if extra:
            now_text += f" ({', '.join(extra)})"
    nxt = ""
    if line.next_student and line.next_at:
        nxt = (
            f'<div class="next">Next shift: <b>{escape(line.next_student)}</b> from '
            f"{escape(_local(line.next_at, tz, now))}</div>"
        )
    where = escape(", ".join(line.sources))
    return (
        f'<section class="duty"><div class="meta">{where}</div><div>{now_text}</div>{nxt}</section>'
    )


def queue_page(
    *,
    entries: list[QueueEntry],
    duty: list[DutyLine],
    now: datetime,
    tz: ZoneInfo,
    csrf: str,
    older: int,
    pending: Sequence[PendingDismissal] = (),
    notice: str | None = None,
    dismissed: Sequence[AuditEntry] = (),
) -> str:
    """The queue: who is on duty, then what waits, most urgent first."""
    header = (
        "<header><h1>Webcare queue</h1>"
        f"<p>{len(entries)} waiting · updated {escape(now.astimezone(tz).strftime('%H:%M:%S'))}"
        f" ({escape(tz.key)}), refreshes every {REFRESH_SECONDS} s</p></header>"
    )
    parts = [_duty(line, now, tz) for line in duty]
    if notice:
        parts.append(f'<p class="meta notice">{escape(notice)}</p>')
    parts.extend(_undo(p, tz, csrf) for p in pending)
    if entries:
        parts.append('<div id="queue">')
        parts.extend(_card(entry, now, tz, csrf) for entry in entries)
        parts.append("</div>")
    else:
        parts.append('<p class="empty">Nothing is waiting.</p>')
    if dismissed:
        parts.append(_dismissed(dismissed, tz))
    if older:
        them = "question was" if older == 1 else "questions were"
        parts.append(
            f'<p class="meta">Not listed: {older} older unanswered {them} posted before this'
            " monitor started watching (more than one target before its first read). Nobody"
            " was alerted about them; they still count in the reports, and answering or"
            " hiding them on the platform still counts.</p>"
        )
    parts.append(
        '<form method="post" action="/logout"><button type="submit" class="secondary">'
        "Log out</button></form>"
    )
    return _page("Webcare queue", header + "<main>" + "".join(parts) + "</main>", refresh=True)


def _dismissed(entries: Sequence[AuditEntry], tz: ZoneInfo) -> str:
    """Who dismissed what and why, from the audit trail, newest first."""
    lines = []
    for entry in entries:
        reason = REASON_LABELS.get(entry.reason or "", entry.reason or "no reason")
        when = entry.at.astimezone(tz).strftime("%a %H:%M")
        lines.append(
            f'<li id="dismissed-{entry.item_id}">Item {entry.item_id} · {escape(reason)}'
            f" · by {escape(entry.actor)} · {escape(when)}</li>"
        )
    return (
        f'<section class="dismissed"><h2>Recently dismissed</h2><ul>{"".join(lines)}</ul></section>'
    )


def _undo(pending: PendingDismissal, tz: ZoneInfo, csrf: str) -> str:
    """A dismissal not done yet, with its Undo button."""
    when = pending.at.astimezone(tz).strftime("%H:%M:%S")
    return (
        f'<form class="notice undo" id="undo-{pending.item_id}" method="post"'
        f' action="/items/{pending.item_id}/undo">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f"<p>Item {pending.item_id} will be dismissed"
        f" ({escape(REASON_LABELS[pending.reason])}) at {escape(when)}.</p>"
        '<button type="submit">Undo</button></form>'
    )


def login_page(*, error: str | None = None) -> str:
    """The token form (a token from [[http.api_tokens]])."""
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        '<form class="login" id="login" method="post" action="/login">'
        "<h1>Webcare queue</h1><p>Enter your access token.</p>"
        f"{message}"
        '<input type="password" name="token" autocomplete="current-password" '
        'aria-label="Access token" required>'
        '<button type="submit">Log in</button></form>'
    )
    return _page("Log in · Webcare queue", body)


def message_page(title: str, text: str) -> str:
    """A short page saying what happened (or why not)."""
    body = (
        f'<main class="login"><h1>{escape(title)}</h1><p>{escape(text)}</p>'
        '<p><a href="/">Open the queue</a></p></main>'
    )
    return _page(title, body)


def _reason_select() -> str:
    """A reason must be chosen: nothing is preselected, and the browser refuses an empty one
    (a dismissed complaint leaves every figure, so it must not happen by a stray tap)."""
    options = "".join(
        f'<option value="{reason}">{escape(REASON_LABELS[reason])}</option>'
        for reason in DISMISS_REASONS
    )
    placeholder = '<option value="" selected disabled>Why dismiss?</option>'
    return f'<select name="reason" aria-label="Reason" required>{placeholder}{options}</select>'


def confirm_page(*, action: str, item_id: int, excerpt: str, author: str | None) -> str:
    """GET on a signed link: show what it will do; the button POSTs the same URL."""
    what = "Acknowledge" if action == "ack" else "Dismiss"
    reasons = ""
    if action == "dismiss":
        reasons = _reason_select()
    body = (
        f'<form class="login" method="post"><h1>{what} item {item_id}?</h1>'
        f"<p><b>{escape(clean_text(author, 100) or 'A consumer')}</b>: "
        f"{escape(clean_text(excerpt, 300))}</p>{reasons}"
        f'<button type="submit">{what}</button></form>'
    )
    return _page(f"{what} · Webcare", body)
