"""The report queries: items of a window as ReportItem objects, and the summary in SQL."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, Select, case, func, select, type_coerce
from sqlalchemy.types import NullType

from monitor.domain import ItemState, Period
from monitor.domain.reply_window import ReplyWindow
from monitor.report import Report, ReportItem, ReportRow, Tally, check_window, report_of_tallies
from monitor.store.repository import UNANSWERED, Store
from monitor.store.tables import items, messages
from monitor.store.windows import message_windows, windowed_sources

_item_message = messages.alias("item_message")
_response = messages.alias("response_message")


def _report_item(m: RowMapping, window: ReplyWindow | None = None) -> ReportItem:
    return ReportItem(
        message_id=m["message_id"],
        source=m["source"],
        brand=m["brand"],
        created_at=m["created_at"],
        period=Period(m["period"]),
        weekend=bool(m["weekend"]),
        holiday=m["holiday"],
        state=ItemState(m["state"]),
        warning_at=m["warning_at"],
        due_at=m["due_at"],
        dismissed_reason=m["dismissed_reason"],
        responder=m["responder"],
        responded_at=m["responded_at"],
        response_seconds=m["response_seconds"],
        response_sla_seconds=m["response_sla_seconds"],
        permalink=m["permalink"],
        author=m["author"],
        window=window,
    )


async def report_items(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    brands: Collection[str] | None = None,
    stored_states: Collection[ItemState] | None = None,
) -> list[ReportItem]:
    """Items created in [since, until) (either end open when None), oldest first, each
    Messenger item with its reply window.

    `brands` limits the result to those brands; `stored_states` filters on the state column as
    stored, which lags for unanswered items, so callers widen it to every unanswered state.
    """
    conditions = _window(since, until, brands)
    if stored_states is not None:
        conditions.append(items.c.state.in_(sorted(s.value for s in stored_states)))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(_items_query(*conditions))).mappings().all()
    windowed = await windowed_sources(store, {row["source"] for row in rows})
    earliest: dict[str, datetime] = {}
    for row in rows:  # oldest first: the first of a source is its earliest
        if row["source"] in windowed:
            earliest.setdefault(row["source"], row["created_at"])
    windows = await message_windows(store, earliest)
    return [_report_item(row, windows.get(row["message_id"])) for row in rows]


def _items_query(*conditions: ColumnElement[bool]) -> Select[Any]:
    """The columns of ReportItem for the items meeting `conditions`, oldest first."""
    return (
        select(
            items.c.message_id,
            items.c.source,
            items.c.brand,
            items.c.created_at,
            items.c.period,
            items.c.weekend,
            items.c.holiday,
            items.c.state,
            items.c.warning_at,
            items.c.due_at,
            items.c.dismissed_reason,
            # Older rows may lack the responder; the response message still names its author.
            func.coalesce(items.c.responder, _response.c.author_name).label("responder"),
            items.c.responded_at,
            items.c.response_seconds,
            items.c.response_sla_seconds,
            _item_message.c.permalink,
            # A waiting item's name; else the stored author (a pseudonym; None once purged).
            func.coalesce(items.c.author_name, _item_message.c.author_name).label("author"),
        )
        .select_from(
            items.join(_item_message, _item_message.c.id == items.c.message_id).outerjoin(
                _response, _response.c.id == items.c.response_message_id
            )
        )
        .where(*conditions)
        .order_by(items.c.created_at, items.c.message_id)
    )


def _window(
    since: datetime | None, until: datetime | None, brands: Collection[str] | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(items.c.created_at >= since)
    if until is not None:
        conditions.append(items.c.created_at < until)
    if brands is not None:
        conditions.append(items.c.brand.in_(sorted(brands)))
    return conditions


async def summary_report(
    store: Store,
    *,
    since: datetime,
    until: datetime,
    as_of: Callable[[], datetime],
    brand: str | None = None,
    brands: Collection[str] | None = None,
    sources: Mapping[str, str] | None = None,
) -> Report[ReportRow]:
    """build_report over report_items(since, until, brands), without making an object per item:
    one query of the columns the figures need (no joins, a due time only where one is still
    judged), tallied per source, brand and period; Messenger sources (as stored) add their
    items' reply windows. `as_of` is asked once the rows are read.
    """
    check_window(since, until)
    if brand is not None:
        brands = [brand]
    query = select(
        items.c.message_id,
        items.c.source,
        items.c.brand,
        items.c.period,
        items.c.state,
        # Untyped: most rows have no due time to convert; the few that do are converted below.
        type_coerce(
            case((items.c.state.in_(UNANSWERED), items.c.due_at), else_=None), NullType()
        ).label("due_at"),
        items.c.response_seconds,
        items.c.response_sla_seconds,
    ).where(*_window(since, until, brands))
    tallies: dict[tuple[str, str, str], Tally] = {}
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        dialect = conn.dialect
    convert = items.c.due_at.type.dialect_impl(dialect).result_processor(dialect, None)
    instant: Callable[[Any], Any] = convert or (lambda value: value)
    windowed = await windowed_sources(store)
    # Every item was created since `since`: no earlier message can move its window.
    present = {row[1] for row in rows} & windowed
    windows = await message_windows(store, dict.fromkeys(present, since))
    for message_id, source, brand_name, period, state, due, wall, sla in rows:
        tally = tallies.get((source, brand_name, period))
        if tally is None:
            tally = tallies[(source, brand_name, period)] = Tally()
        tally.items += 1
        window = windows.get(message_id)
        if window is not None:
            tally.windowed = True
            if state != _DISMISSED:  # as ReportItem.judged_window
                tally.windows.append(window)
        if state == _DISMISSED:
            tally.dismissed += 1
        elif due is not None:
            tally.due.append(instant(due))
        elif state in _ANSWERED:
            if state == _IN_TIME:
                tally.in_time += 1
            else:
                tally.late += 1
            if wall is not None:
                tally.wall.append(wall)
            if sla is not None:
                tally.sla.append(sla)
        else:
            ItemState(state)  # not a state: refused as report_items refuses it
    by_period: dict[tuple[str, str, Period], Tally] = {}
    for (source, brand_name, period), tally in tallies.items():
        kind = Period(period)
        if kind is Period.AFTER_HOURS:
            tally.after_hours = tally.items
        by_period[(source, brand_name, kind)] = tally
    return report_of_tallies(
        by_period,
        since=since,
        until=until,
        as_of=as_of(),
        brand=brand,
        sources=sources,
        windowed=windowed,
    )


_IN_TIME = ItemState.ANSWERED_IN_TIME.value
_ANSWERED = frozenset({_IN_TIME, ItemState.ANSWERED_LATE.value})
_DISMISSED = ItemState.DISMISSED.value
