"""The report query: items of a window joined with their messages, as ReportItem objects."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, RowMapping, func, select

from monitor.domain import ItemState, Period
from monitor.report import ReportItem
from monitor.store.repository import Store
from monitor.store.tables import items, messages

_item_message = messages.alias("item_message")
_response = messages.alias("response_message")


def _report_item(m: RowMapping) -> ReportItem:
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
    )


async def report_items(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    brands: Collection[str] | None = None,
    stored_states: Collection[ItemState] | None = None,
) -> list[ReportItem]:
    """Items created in [since, until) (either end open when None), oldest first.

    `brands` limits the result to those brands; `stored_states` filters on the state column as
    stored, which lags for unanswered items, so callers widen it to every unanswered state.
    """
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(items.c.created_at >= since)
    if until is not None:
        conditions.append(items.c.created_at < until)
    if brands is not None:
        conditions.append(items.c.brand.in_(sorted(brands)))
    if stored_states is not None:
        conditions.append(items.c.state.in_(sorted(s.value for s in stored_states)))
    query = (
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
            _item_message.c.author_name.label("author"),
        )
        .select_from(
            items.join(_item_message, _item_message.c.id == items.c.message_id).outerjoin(
                _response, _response.c.id == items.c.response_message_id
            )
        )
        .where(*conditions)
        .order_by(items.c.created_at, items.c.message_id)
    )
    async with store.engine.connect() as conn:
        result = await conn.execute(query)
        return [_report_item(row) for row in result.mappings()]
