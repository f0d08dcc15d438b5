"""The report (DESIGN.md section 2, "Report window"): pure computation, `as_of` is a parameter."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, tzinfo
from fractions import Fraction
from typing import Any, Generic, Literal, TypeVar

from monitor.domain import ItemState, Outcome, Period
from monitor.domain.reply_window import ReplyWindow

ALL = "*"
PERIOD_ALL = "all"
MEDIAN = Fraction(1, 2)
P90 = Fraction(9, 10)
_ANSWERED = {
    ItemState.ANSWERED_IN_TIME: Outcome.IN_TIME,
    ItemState.ANSWERED_LATE: Outcome.LATE,
}
# Figures that apply to some sources only (None elsewhere): the JSON leaves them out of rows
# where they do not apply, the CSV and the table show them only where some row has them.
WHERE_APPLIES = frozenset({"lost_window"})


@dataclass(frozen=True, kw_only=True)
class ReportItem:
    """An item as the report needs it: the stored item plus its message's permalink and author."""

    message_id: int
    source: str
    brand: str
    created_at: datetime
    period: Period
    weekend: bool
    holiday: str | None
    state: ItemState
    warning_at: datetime
    due_at: datetime
    dismissed_reason: str | None = None
    responder: str | None = None
    responded_at: datetime | None = None
    response_seconds: float | None = None
    response_sla_seconds: float | None = None
    permalink: str | None = None
    author: str | None = None
    window: ReplyWindow | None = None  # Messenger: the reply window of the item's message

    @property
    def judged_window(self) -> ReplyWindow | None:
        """The reply window the item is judged on; none for a dismissed one (it needed none)."""
        return None if self.state is ItemState.DISMISSED else self.window

    def lost_window(self, as_of: datetime) -> bool | None:
        """Whether the item lost its reply window by `as_of`; None where no window applies."""
        if self.window is None:
            return None
        judged = self.judged_window
        return judged is not None and judged.lost(as_of)

    @property
    def outcome(self) -> Outcome | None:
        """in_time / late for answered items; the engine decided it from platform times."""
        return _ANSWERED.get(self.state)

    def state_as_of(self, as_of: datetime) -> ItemState:
        """The state at `as_of`: unanswered items are judged by their deadlines, not the stored
        state, which lags until the deadline scheduler has caught up."""
        if not self.state.is_unanswered:
            return self.state
        if self.due_at <= as_of:
            return ItemState.BREACHED
        if self.warning_at <= as_of:
            return ItemState.WARNING
        return ItemState.OPEN


@dataclass(frozen=True, kw_only=True)
class ReportRow:
    """One row of the summary: a source × period, a brand, or everything."""

    source: str
    brand: str
    period: str
    items: int
    dismissed: int
    answered: int
    answered_in_time: int
    answered_late: int
    breached_open: int
    pending: int
    compliance: float | None
    median_response_seconds: float | None
    p90_response_seconds: float | None
    median_response_sla_seconds: float | None
    p90_response_sla_seconds: float | None
    after_hours_share: float | None
    lost_window: int | None = None  # Messenger sources and their totals: items that lost it


@dataclass(frozen=True, kw_only=True)
class ModeratorRow:
    """Replies and response times of one responder on one source."""

    brand: str
    source: str
    responder: str | None
    replies: int
    in_time: int
    late: int
    median_response_seconds: float | None
    p90_response_seconds: float | None
    median_response_sla_seconds: float | None
    p90_response_sla_seconds: float | None


@dataclass(frozen=True, kw_only=True)
class ItemLine:
    """One item of the `--items` listing, its state judged as of the report's `as_of`."""

    id: int  # what POST /api/v1/items/{id}/ack and /dismiss take
    source: str
    brand: str
    permalink: str | None
    author: str | None
    created_at: datetime
    period: str
    weekend: bool
    holiday: str | None
    state: str
    outcome: str | None
    due_at: datetime
    responded_at: datetime | None
    response_seconds: float | None
    response_sla_seconds: float | None
    responder: str | None
    dismissed_reason: str | None
    lost_window: bool | None = None  # Messenger items only


RowT = TypeVar("RowT", ReportRow, ModeratorRow, ItemLine)


@dataclass(frozen=True, kw_only=True)
class Report(Generic[RowT]):
    """A window, the instant outcomes were judged at, and the rows."""

    since: datetime
    until: datetime
    as_of: datetime
    rows: tuple[RowT, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of the CLI and `/api/v1/report`: instants in ISO 8601, UTC offset."""
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "as_of": iso(self.as_of),
            "rows": [row_values(row) for row in self.rows],
        }


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with an explicit offset."""
    return moment.astimezone(UTC).isoformat()


def row_values(row: ReportRow | ModeratorRow | ItemLine) -> dict[str, Any]:
    """A row as plain JSON values, in field order (WHERE_APPLIES ones only where they apply)."""
    return {
        f.name: iso(v) if isinstance(v, datetime) else v
        for f in fields(row)
        for v in [getattr(row, f.name)]
        if v is not None or f.name not in WHERE_APPLIES
    }


def parse_instant(text: str, zone: tzinfo = UTC) -> datetime:
    """Parse an ISO 8601 date or date-time into UTC; one without an offset is in `zone`
    (UTC for machines; people's command lines pass their brand's or roster's zone)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as err:
        raise ValueError(
            f"invalid time {text!r}: use ISO 8601, e.g. 2026-11-16 or 2026-11-16T09:00+01:00"
        ) from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(UTC)
    except OverflowError as err:  # 0001-01-01T00:00+01:00 is before the first representable UTC
        raise ValueError(f"time {text!r} is out of range (years 1-9999 in UTC)") from err


def check_window(since: datetime, until: datetime) -> None:
    """Reject naive instants and empty or inverted windows."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware")
    if since >= until:
        raise ValueError(f"since ({iso(since)}) must be before until ({iso(until)})")


def nearest_rank(values: Sequence[float], q: Fraction) -> float | None:
    """The value at rank ⌈q·N⌉ of the sorted values (1-based), None when there are none."""
    return _ranked(sorted(values), q)


def _ranked(ordered: Sequence[float], q: Fraction) -> float | None:
    """nearest_rank of values already sorted."""
    if not ordered:
        return None
    # 0.9 has no exact binary form: keep the rank arithmetic in integers so it is exact.
    rank = max(1, -(-len(ordered) * q.numerator // q.denominator))
    return ordered[rank - 1]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _in_window(
    items: Iterable[ReportItem], since: datetime, until: datetime, brand: str | None
) -> list[ReportItem]:
    check_window(since, until)
    return [
        i for i in items if since <= i.created_at < until and (brand is None or i.brand == brand)
    ]


def _answered(items: Sequence[ReportItem]) -> list[ReportItem]:
    return [i for i in items if i.outcome is not None]


def _seconds(
    items: Sequence[ReportItem], pick: Callable[[ReportItem], float | None]
) -> list[float]:
    return [v for i in items for v in [pick(i)] if v is not None]


def _wall(item: ReportItem) -> float | None:
    return item.response_seconds


def _sla(item: ReportItem) -> float | None:
    return item.response_sla_seconds


@dataclass(kw_only=True)
class Tally:
    """The makings of report rows: counts, due times of unanswered items, response times.

    Filled item by item (build_report) or from SQL (monitor.store.reports.summary_report);
    both make their rows with `row`, so their figures cannot drift apart.
    """

    items: int = 0
    dismissed: int = 0
    in_time: int = 0
    late: int = 0
    after_hours: int = 0
    due: list[datetime] = field(default_factory=list)  # breached or pending: judged at as_of
    wall: list[float] = field(default_factory=list)  # of answered items, where known
    sla: list[float] = field(default_factory=list)
    windowed: bool = False  # a Messenger source's (or a total over one): lost_window applies
    windows: list[ReplyWindow] = field(default_factory=list)  # judged_window of each item

    def add(self, item: ReportItem) -> None:
        """Count one item."""
        self.items += 1
        if item.window is not None:
            self.windowed = True
        judged = item.judged_window
        if judged is not None:
            self.windows.append(judged)
        if item.period is Period.AFTER_HOURS:
            self.after_hours += 1
        state = item.state
        if state is ItemState.DISMISSED:
            self.dismissed += 1
        elif state.is_unanswered:
            self.due.append(item.due_at)
        else:
            if state is ItemState.ANSWERED_IN_TIME:
                self.in_time += 1
            else:
                self.late += 1
            if item.response_seconds is not None:
                self.wall.append(item.response_seconds)
            if item.response_sla_seconds is not None:
                self.sla.append(item.response_sla_seconds)

    def merge(self, other: Tally) -> None:
        """Add another tally's items to this one."""
        self.items += other.items
        self.dismissed += other.dismissed
        self.in_time += other.in_time
        self.late += other.late
        self.after_hours += other.after_hours
        self.due.extend(other.due)
        self.wall.extend(other.wall)
        self.sla.extend(other.sla)
        self.windowed = self.windowed or other.windowed
        self.windows.extend(other.windows)

    def row(self, *, source: str, brand: str, period: str, as_of: datetime) -> ReportRow:
        """The figures of one row over the counted items (sorts its response times in place:
        a tally merged from sorted ones then sorts by merging runs)."""
        breached = sum(1 for due in self.due if due <= as_of)
        in_time, late = self.in_time, self.late
        self.wall.sort()
        self.sla.sort()
        wall, sla = self.wall, self.sla
        return ReportRow(
            source=source,
            brand=brand,
            period=period,
            items=self.items,
            dismissed=self.dismissed,
            answered=in_time + late,
            answered_in_time=in_time,
            answered_late=late,
            breached_open=breached,
            pending=len(self.due) - breached,
            compliance=_ratio(in_time, in_time + late + breached),
            median_response_seconds=_ranked(wall, MEDIAN),
            p90_response_seconds=_ranked(wall, P90),
            median_response_sla_seconds=_ranked(sla, MEDIAN),
            p90_response_sla_seconds=_ranked(sla, P90),
            after_hours_share=(
                _ratio(self.after_hours, self.items) if period == PERIOD_ALL else None
            ),
            lost_window=(sum(1 for w in self.windows if w.lost(as_of)) if self.windowed else None),
        )


def summarise(
    items: Sequence[ReportItem], *, source: str, brand: str, period: str, as_of: datetime
) -> ReportRow:
    """The figures of one row over the given items."""
    tally = Tally()
    for item in items:
        tally.add(item)
    return tally.row(source=source, brand=brand, period=period, as_of=as_of)


def _pairs(
    present: Iterable[tuple[str, str]], sources: Mapping[str, str], brand: str | None
) -> list[tuple[str, str]]:
    """(source, brand) pairs to give rows: the configured ones, then those only items know.

    Stored items may name a source since removed from the config, or a brand it used to have.
    """
    pairs = {(name, b): None for name, b in sources.items() if brand is None or b == brand}
    for pair in sorted(set(present)):
        pairs.setdefault(pair, None)
    # Keep each brand's sources together, brands in order of first appearance.
    brands = list(dict.fromkeys(b for _s, b in pairs))
    return sorted(pairs, key=lambda pair: brands.index(pair[1]))


def report_of_tallies(
    tallies: Mapping[tuple[str, str, Period], Tally],
    *,
    since: datetime,
    until: datetime,
    as_of: datetime,
    brand: str | None = None,
    sources: Mapping[str, str] | None = None,
    windowed: Collection[str] = (),
) -> Report[ReportRow]:
    """The summary's rows from a tally per (source, brand, period) of the window's items.

    `windowed` names the sources whose replies have a window (Messenger): their rows and
    totals give lost_window, also with no item.
    """
    pairs = _pairs(((s, b) for s, b, _p in tallies), sources or {}, brand)
    by_brand: dict[str, list[str]] = {}
    for source, brand_name in pairs:
        by_brand.setdefault(brand_name, []).append(source)
    rows: list[ReportRow] = []
    overall = Tally()
    for brand_name, brand_sources in by_brand.items():
        brand_tally = Tally()
        for source in brand_sources:
            source_tally = Tally(windowed=source in windowed)
            for period in Period:
                tally = tallies.get((source, brand_name, period)) or Tally()
                tally.windowed = tally.windowed or source_tally.windowed
                rows.append(
                    tally.row(source=source, brand=brand_name, period=period.value, as_of=as_of)
                )
                source_tally.merge(tally)
            rows.append(
                source_tally.row(source=source, brand=brand_name, period=PERIOD_ALL, as_of=as_of)
            )
            brand_tally.merge(source_tally)
        rows.append(brand_tally.row(source=ALL, brand=brand_name, period=PERIOD_ALL, as_of=as_of))
        overall.merge(brand_tally)
    if brand is None:
        rows.append(overall.row(source=ALL, brand=ALL, period=PERIOD_ALL, as_of=as_of))
    return Report(since=since, until=until, as_of=as_of, rows=tuple(rows))


def build_report(
    items: Sequence[ReportItem],
    *,
    since: datetime,
    until: datetime,
    as_of: datetime,
    brand: str | None = None,
    sources: Mapping[str, str] | None = None,
    windowed: Collection[str] = (),
) -> Report[ReportRow]:
    """Rows per source × period, then per brand, then overall (left out when `brand` is given).

    `sources` maps every configured source name to its brand so that quiet sources still get
    rows with zero items; `windowed` names the sources with a reply window (report_of_tallies).
    """
    # Tallied once: the cost grows with the items, not with items × sources.
    tallies: dict[tuple[str, str, Period], Tally] = {}
    for item in _in_window(items, since, until, brand):
        key = (item.source, item.brand, item.period)
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = Tally()
        tally.add(item)
    return report_of_tallies(
        tallies,
        since=since,
        until=until,
        as_of=as_of,
        brand=brand,
        sources=sources,
        windowed=windowed,
    )


def build_moderator_report(
    items: Sequence[ReportItem],
    *,
    since: datetime,
    until: datetime,
    as_of: datetime,
    brand: str | None = None,
    sources: Mapping[str, str] | None = None,
) -> Report[ModeratorRow]:
    """One row per brand × source × responder over the answered items of the window."""
    answered = _answered(_in_window(items, since, until, brand))
    present = ((i.source, i.brand) for i in answered)
    order = {pair: n for n, pair in enumerate(_pairs(present, sources or {}, brand))}
    groups: dict[tuple[str, str, str | None], list[ReportItem]] = {}
    for item in answered:
        groups.setdefault((item.brand, item.source, item.responder), []).append(item)

    def key(group: tuple[str, str, str | None]) -> tuple[int, bool, str]:
        brand_name, source, responder = group
        # An unnamed responder (the platform did not say) sorts after the named ones.
        return (order[(source, brand_name)], responder is None, responder or "")

    rows = []
    for group in sorted(groups, key=key):
        members = groups[group]
        wall, sla = _seconds(members, _wall), _seconds(members, _sla)
        in_time = sum(1 for i in members if i.outcome is Outcome.IN_TIME)
        rows.append(
            ModeratorRow(
                brand=group[0],
                source=group[1],
                responder=group[2],
                replies=len(members),
                in_time=in_time,
                late=len(members) - in_time,
                median_response_seconds=nearest_rank(wall, MEDIAN),
                p90_response_seconds=nearest_rank(wall, P90),
                median_response_sla_seconds=nearest_rank(sla, MEDIAN),
                p90_response_sla_seconds=nearest_rank(sla, P90),
            )
        )
    return Report(since=since, until=until, as_of=as_of, rows=tuple(rows))


def item_line(item: ReportItem, as_of: datetime) -> ItemLine:
    """One item for the listing, its state judged as of `as_of`."""
    outcome = item.outcome
    return ItemLine(
        id=item.message_id,
        source=item.source,
        brand=item.brand,
        permalink=item.permalink,
        author=item.author,
        created_at=item.created_at,
        period=item.period.value,
        weekend=item.weekend,
        holiday=item.holiday,
        state=item.state_as_of(as_of).value,
        outcome=outcome.value if outcome is not None else None,
        due_at=item.due_at,
        responded_at=item.responded_at,
        response_seconds=item.response_seconds,
        response_sla_seconds=item.response_sla_seconds,
        responder=item.responder,
        dismissed_reason=item.dismissed_reason,
        lost_window=item.lost_window(as_of),
    )


def build_items_report(
    items: Sequence[ReportItem],
    *,
    since: datetime,
    until: datetime,
    as_of: datetime,
    brand: str | None = None,
    states: Iterable[ItemState] | None = None,
) -> Report[ItemLine]:
    """The items of the window, oldest first, optionally only those in `states` as of `as_of`."""
    wanted = frozenset(states) if states is not None else None
    selected = sorted(
        _in_window(items, since, until, brand), key=lambda i: (i.created_at, i.message_id)
    )
    lines = [
        item_line(i, as_of) for i in selected if wanted is None or i.state_as_of(as_of) in wanted
    ]
    return Report(since=since, until=until, as_of=as_of, rows=tuple(lines))


ReportKind = Literal["summary", "moderator", "items"]
AnyReport = Report[ReportRow] | Report[ModeratorRow] | Report[ItemLine]


def build(
    kind: ReportKind,
    items: Sequence[ReportItem],
    *,
    since: datetime,
    until: datetime,
    as_of: datetime,
    brand: str | None = None,
    sources: Mapping[str, str] | None = None,
    windowed: Collection[str] = (),
) -> AnyReport:
    """The summary, the per-moderator report or the item listing, as the CLI and API ask."""
    if kind == "moderator":
        return build_moderator_report(
            items, since=since, until=until, as_of=as_of, brand=brand, sources=sources
        )
    if kind == "items":
        return build_items_report(items, since=since, until=until, as_of=as_of, brand=brand)
    return build_report(
        items,
        since=since,
        until=until,
        as_of=as_of,
        brand=brand,
        sources=sources,
        windowed=windowed,
    )
