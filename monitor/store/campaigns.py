"""The campaign report's queries: a hashtag's posts counted in SQL, and its interactions' items."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, not_, or_, select

from monitor.campaign import (
    CampaignPosts,
    CampaignReport,
    SourcePosts,
    build_campaign,
    campaign_tag,
)
from monitor.domain import KIND_BROADCAST, KIND_CHATTER, KIND_INTERACTION
from monitor.report import ReportItem, check_window
from monitor.store.reports import _items_query, _report_item
from monitor.store.repository import Store
from monitor.store.tables import items, messages, sources
from monitor.store.types import has_tag

_FIGURES = ("posts", "brand_posts", "broadcasts", "chatter", "interactions")


def _tagged(
    tag: str, since: datetime, until: datetime, brand: str | None
) -> list[ColumnElement[bool]]:
    """The stored posts carrying `tag`, created in [since, until), on the brand's sources."""
    check_window(since, until)
    conditions = [
        has_tag(messages.c.tags, campaign_tag(tag)),
        messages.c.created_at >= since,
        messages.c.created_at < until,
    ]
    if brand is not None:
        brand_sources = select(sources.c.name).where(sources.c.brand == brand)
        conditions.append(messages.c.source.in_(brand_sources))
    return conditions


def _is_interaction() -> ColumnElement[bool]:
    """As Message.opens_item: a consumer post the rule called an interaction (or left unsorted)."""
    kind = messages.c.kind
    return not_(messages.c.is_brand) & or_(kind.is_(None), kind == KIND_INTERACTION)


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def read_campaign(
    store: Store, *, tag: str, since: datetime, until: datetime, brand: str | None = None
) -> tuple[CampaignPosts, list[ReportItem]]:
    """The campaign's posts counted per source, and the items of its interactions, oldest first."""
    tagged = _tagged(tag, since, until, brand)
    consumer = not_(messages.c.is_brand)
    per_source = (
        select(
            messages.c.source,
            sources.c.platform,
            func.count().label("posts"),
            _count(messages.c.is_brand).label("brand_posts"),
            _count(consumer & (messages.c.kind == KIND_BROADCAST)).label("broadcasts"),
            _count(consumer & (messages.c.kind == KIND_CHATTER)).label("chatter"),
            _count(_is_interaction()).label("interactions"),
        )
        .select_from(messages.join(sources, sources.c.name == messages.c.source))
        .where(*tagged)
        .group_by(messages.c.source, sources.c.platform)
        .order_by(messages.c.source)
    )
    # An account is one author on its own source: the same id on two networks is two people.
    # A NULL author (erased) makes the whole key NULL, which COUNT(DISTINCT) leaves out.
    author = messages.c.source + " " + func.coalesce(messages.c.author_id, messages.c.author_name)
    authors = select(func.count(func.distinct(author))).where(*tagged)
    interaction_ids = select(messages.c.id).where(*tagged, _is_interaction())
    async with store.engine.connect() as conn:
        rows = (await conn.execute(per_source)).mappings().all()
        author_count = (await conn.execute(authors)).scalar_one()
        found = await conn.execute(_items_query(items.c.message_id.in_(interaction_ids)))
        interaction_items = [_report_item(row) for row in found.mappings()]
    counted = CampaignPosts(
        authors=int(author_count),
        sources=tuple(
            SourcePosts(
                source=row["source"],
                platform=row["platform"],
                **{figure: int(row[figure]) for figure in _FIGURES},
            )
            for row in rows
        ),
    )
    return counted, interaction_items


async def campaign_report(
    store: Store,
    *,
    tag: str,
    since: datetime,
    until: datetime,
    as_of: Callable[[], datetime],
    brand: str | None = None,
) -> CampaignReport:
    """The campaign report of `tag` over the window; `as_of` is asked once the rows are read."""
    posts, interaction_items = await read_campaign(
        store, tag=tag, since=since, until=until, brand=brand
    )
    return build_campaign(
        posts, interaction_items, tag=tag, since=since, until=until, as_of=as_of(), brand=brand
    )
