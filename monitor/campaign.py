"""The campaign report (docs/campaigns.md): one hashtag's posts and what became of its interactions.

Pure computation like monitor/report.py, whose Tally gives the SLA figures, so the campaign's
compliance and response times are the report's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.domain import tag_key
from monitor.report import (
    ALL,
    PERIOD_ALL,
    ItemLine,
    ReportItem,
    ReportRow,
    Tally,
    check_window,
    iso,
    item_line,
)


def campaign_tag(tag: str) -> str:
    """The tag as stored (tag_key: no '#', lower case), refused when it is not one hashtag."""
    key = tag_key(tag)
    if not key or any(c.isspace() or c == "#" for c in key):
        raise ValueError(f"invalid campaign tag {tag!r}: one hashtag, e.g. jobmarket or #JobMarket")
    return key


@dataclass(frozen=True, kw_only=True)
class SourcePosts:
    """One source's share of a campaign's posts: how many the store holds, and of what kind."""

    source: str
    platform: str
    posts: int
    brand_posts: int
    broadcasts: int
    chatter: int
    interactions: int


@dataclass(frozen=True, kw_only=True)
class CampaignPosts:
    """What the store counted of the posts carrying the tag in the window."""

    authors: int  # distinct accounts across all sources
    sources: tuple[SourcePosts, ...]

    def total(self, figure: str) -> int:
        """A per-source figure summed over the sources."""
        return sum(int(getattr(s, figure)) for s in self.sources)


@dataclass(frozen=True, kw_only=True)
class CampaignFigures:
    """The campaign at a glance; the names are the JSON's and the CSV's."""

    posts: int
    authors: int
    brand_posts: int
    broadcasts: int
    chatter: int
    interactions: int
    followed_up: int  # answered, in time or late
    answered_in_time: int
    answered_late: int
    waiting: int  # never answered so far: pending and breached
    breached: int
    dismissed: int
    # Interactions without an item: their authors are on the source's ignore list.
    not_tracked: int
    compliance: float | None
    median_response_seconds: float | None
    p90_response_seconds: float | None
    median_response_sla_seconds: float | None
    p90_response_sla_seconds: float | None


@dataclass(frozen=True, kw_only=True)
class WaitingLine:
    """An interaction nobody answered yet: where it is, since when, and how long it has waited."""

    id: int
    source: str
    permalink: str | None
    author: str | None
    created_at: datetime
    state: str  # open, warning or breached as of the report's as_of
    due_at: datetime
    waited_seconds: float


@dataclass(frozen=True, kw_only=True)
class CampaignReport:
    """One hashtag over a window, outcomes judged at `as_of`."""

    tag: str
    since: datetime
    until: datetime
    as_of: datetime
    brand: str | None
    figures: CampaignFigures
    sources: tuple[SourcePosts, ...]
    waiting: tuple[WaitingLine, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON document: instants in UTC with their offset, like the report's."""
        return {
            "campaign": self.tag,
            "since": iso(self.since),
            "until": iso(self.until),
            "as_of": iso(self.as_of),
            "brand": self.brand,
            "figures": _values(self.figures),
            "sources": [_values(s) for s in self.sources],
            "waiting": [_values(w) for w in self.waiting],
        }


def _values(row: CampaignFigures | SourcePosts | WaitingLine) -> dict[str, Any]:
    return {
        name: iso(value) if isinstance(value, datetime) else value
        for name, value in vars(row).items()
    }


def sla_row(items: Sequence[ReportItem], *, brand: str | None, as_of: datetime) -> ReportRow:
    """The report's `all` row over the campaign's interaction items."""
    tally = Tally()
    for item in items:
        tally.add(item)
    return tally.row(source=ALL, brand=brand or ALL, period=PERIOD_ALL, as_of=as_of)


def waiting_line(item: ReportItem, as_of: datetime) -> WaitingLine:
    """An unanswered item as the waiting list shows it."""
    line: ItemLine = item_line(item, as_of)
    return WaitingLine(
        id=line.id,
        source=line.source,
        permalink=line.permalink,
        author=line.author,
        created_at=line.created_at,
        state=line.state,
        due_at=line.due_at,
        waited_seconds=(as_of - line.created_at).total_seconds(),
    )


def build_campaign(
    posts: CampaignPosts,
    items: Sequence[ReportItem],
    *,
    tag: str,
    since: datetime,
    until: datetime,
    as_of: datetime,
    brand: str | None = None,
) -> CampaignReport:
    """The campaign report from the counted posts and the items of its interactions."""
    check_window(since, until)
    row = sla_row(items, brand=brand, as_of=as_of)
    interactions = posts.total("interactions")
    figures = CampaignFigures(
        posts=posts.total("posts"),
        authors=posts.authors,
        brand_posts=posts.total("brand_posts"),
        broadcasts=posts.total("broadcasts"),
        chatter=posts.total("chatter"),
        interactions=interactions,
        followed_up=row.answered,
        answered_in_time=row.answered_in_time,
        answered_late=row.answered_late,
        waiting=row.breached_open + row.pending,
        breached=row.breached_open,
        dismissed=row.dismissed,
        not_tracked=interactions - row.items,
        compliance=row.compliance,
        median_response_seconds=row.median_response_seconds,
        p90_response_seconds=row.p90_response_seconds,
        median_response_sla_seconds=row.median_response_sla_seconds,
        p90_response_sla_seconds=row.p90_response_sla_seconds,
    )
    unanswered = sorted(
        (i for i in items if i.state.is_unanswered), key=lambda i: (i.created_at, i.message_id)
    )
    return CampaignReport(
        tag=campaign_tag(tag),
        since=since,
        until=until,
        as_of=as_of,
        brand=brand,
        figures=figures,
        sources=posts.sources,
        waiting=tuple(waiting_line(i, as_of) for i in unanswered),
    )
