"""The report's arithmetic on hand-computed examples (DESIGN.md section 2, "Report window")."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.domain import ItemState, Period
from monitor.durations import human_duration
from monitor.report import (
    MEDIAN,
    P90,
    Report,
    ReportItem,
    ReportRow,
    build,
    build_items_report,
    build_moderator_report,
    build_report,
    check_window,
    item_line,
    nearest_rank,
    parse_instant,
)
from monitor.report_format import format_csv, format_json, format_table

UTC_ZONE = ZoneInfo("UTC")

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SINCE = datetime(2026, 11, 16, tzinfo=UTC)
UNTIL = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE, AFTER = Period.OFFICE_HOURS, Period.AFTER_HOURS
_ids = iter(range(1, 10_000))


def item(
    *,
    at: datetime = AS_OF - timedelta(hours=6),
    source: str = "acme-fb",
    brand: str = "acme",
    period: Period = OFFICE,
    state: ItemState = ItemState.OPEN,
    due_in: float = 3600.0,
    wall: float | None = None,
    sla: float | None = None,
    responder: str | None = None,
    **kw: Any,
) -> ReportItem:
    """An item created at `at`, due `due_in` seconds later, warned at 75 % of that."""
    return ReportItem(
        message_id=next(_ids),
        source=source,
        brand=brand,
        created_at=at,
        period=period,
        weekend=False,
        holiday=None,
        state=state,
        warning_at=at + timedelta(seconds=0.75 * due_in),
        due_at=at + timedelta(seconds=due_in),
        responder=responder,
        responded_at=at + timedelta(seconds=wall) if wall is not None else None,
        response_seconds=wall,
        response_sla_seconds=sla if sla is not None else wall,
        permalink=f"https://www.facebook.com/p/{next(_ids)}",
        author="Ann Consumer",
        **kw,
    )


def due_at(moment: datetime, *, period: Period = OFFICE, **kw: Any) -> ReportItem:
    """An unanswered item (stored as `open`) whose due instant is `moment`."""
    return item(at=moment - timedelta(hours=1), period=period, due_in=3600.0, **kw)


IN_TIME, LATE = ItemState.ANSWERED_IN_TIME, ItemState.ANSWERED_LATE

# One source, worked by hand in the tests below.
A = item(state=IN_TIME, wall=600, responder="Ann")
B = item(state=LATE, wall=5000, sla=4000, responder="Bob")
C = due_at(AS_OF - timedelta(seconds=1))  # stored `open`, but its due instant has passed
D = due_at(AS_OF)  # due exactly now: breached (the breach fires at the due instant)
E = item(at=AS_OF - timedelta(minutes=50), due_in=3600)  # warned at 45 min, due at 60: pending
F = item(
    period=AFTER,
    state=ItemState.DISMISSED,
    dismissed_reason="hidden",
    wall=30,  # answered before it was hidden: still out of every response figure
    responder="Ann",
)
G = item(period=AFTER, state=IN_TIME, wall=1200, responder="Ann")
ONE_SOURCE = [A, B, C, D, E, F, G]


def rows_by_key(rows: tuple[ReportRow, ...]) -> dict[tuple[str, str, str], ReportRow]:
    return {(r.source, r.brand, r.period): r for r in rows}


def report(items: list[ReportItem], **kw: Any) -> dict[tuple[str, str, str], ReportRow]:
    kw.setdefault("sources", {"acme-fb": "acme"})
    result = build_report(items, since=SINCE, until=UNTIL, as_of=AS_OF, **kw)
    return rows_by_key(result.rows)


# --- nearest rank ---------------------------------------------------------------------------


def test_nearest_rank_on_ten_values() -> None:
    values = [100.0, 10, 90, 20, 80, 30, 70, 40, 60, 50]  # unsorted on purpose
    assert nearest_rank(values, MEDIAN) == 50  # rank ceil(5) = 5
    assert nearest_rank(values, P90) == 90  # rank ceil(9) = 9


@pytest.mark.parametrize(
    ("values", "median", "p90"),
    [
        ([42.0], 42.0, 42.0),  # N=1: rank 1 for every q
        ([1.0, 2.0], 1.0, 2.0),  # ceil(1) = 1, ceil(1.8) = 2
        ([3.0, 1.0, 2.0], 2.0, 3.0),  # ceil(1.5) = 2, ceil(2.7) = 3
        ([float(n) for n in range(1, 12)], 6.0, 10.0),  # N=11: ceil(5.5)=6, ceil(9.9)=10
        ([float(n) for n in range(1, 21)], 10.0, 18.0),  # N=20: ranks 10 and 18, no interpolation
    ],
)
def test_nearest_rank_small_lists(values: list[float], median: float, p90: float) -> None:
    assert nearest_rank(values, MEDIAN) == median
    assert nearest_rank(values, P90) == p90


def test_nearest_rank_of_nothing_is_null() -> None:
    assert nearest_rank([], MEDIAN) is None
    assert nearest_rank([], P90) is None


def test_nearest_rank_is_exact_integer_arithmetic() -> None:
    for n in range(1, 500):
        values = [float(v) for v in range(1, n + 1)]
        assert nearest_rank(values, Fraction(9, 10)) == -(-9 * n // 10)


# --- one source, worked by hand -------------------------------------------------------------


def test_office_row() -> None:
    row = report(ONE_SOURCE)[("acme-fb", "acme", "office_hours")]
    assert (row.items, row.dismissed, row.answered) == (5, 0, 2)
    assert (row.answered_in_time, row.answered_late) == (1, 1)
    assert (row.breached_open, row.pending) == (2, 1)  # C and D by due_at, E not yet due
    assert row.compliance == 1 / 4
    # Wall-clock [600, 5000]: median rank 1, p90 rank 2; SLA [600, 4000].
    assert (row.median_response_seconds, row.p90_response_seconds) == (600, 5000)
    assert (row.median_response_sla_seconds, row.p90_response_sla_seconds) == (600, 4000)
    assert row.after_hours_share is None


def test_after_hours_row_counts_the_dismissed_item_only_in_items_and_dismissed() -> None:
    row = report(ONE_SOURCE)[("acme-fb", "acme", "after_hours")]
    assert (row.items, row.dismissed, row.answered, row.answered_in_time) == (2, 1, 1, 1)
    assert (row.answered_late, row.breached_open, row.pending) == (0, 0, 0)
    assert row.compliance == 1.0
    # F's 30 s reply does not count: only G's 1200 s.
    assert (row.median_response_seconds, row.p90_response_seconds) == (1200, 1200)
    assert row.after_hours_share is None


def test_all_row_of_the_source() -> None:
    row = report(ONE_SOURCE)[("acme-fb", "acme", "all")]
    assert (row.items, row.dismissed, row.answered) == (7, 1, 3)
    assert (row.answered_in_time, row.answered_late, row.breached_open, row.pending) == (2, 1, 2, 1)
    assert row.compliance == 2 / 5
    # Wall-clock [600, 1200, 5000]: ranks 2 and 3; SLA [600, 1200, 4000].
    assert (row.median_response_seconds, row.p90_response_seconds) == (1200, 5000)
    assert (row.median_response_sla_seconds, row.p90_response_sla_seconds) == (1200, 4000)
    assert row.after_hours_share == 2 / 7


def test_breached_open_is_judged_by_due_at_not_by_the_stored_state() -> None:
    stored_breached_but_early = replace(C, state=ItemState.BREACHED)
    row = report([C, D, E, stored_breached_but_early])[("acme-fb", "acme", "all")]
    assert (row.breached_open, row.pending) == (3, 1)
    later = build_report([E], since=SINCE, until=UNTIL, as_of=E.due_at).rows[0]
    assert (later.breached_open, later.pending) == (1, 0)
    earlier = build_report(
        [E], since=SINCE, until=UNTIL, as_of=E.due_at - timedelta(microseconds=1)
    ).rows[0]
    assert (earlier.breached_open, earlier.pending) == (0, 1)


def test_compliance_is_null_without_decided_items() -> None:
    rows = report([E, F])  # one pending, one dismissed: nothing in the denominator
    assert rows[("acme-fb", "acme", "all")].compliance is None
    assert rows[("acme-fb", "acme", "office_hours")].compliance is None
    assert rows[("acme-fb", "acme", "all")].median_response_seconds is None
    assert rows[("acme-fb", "acme", "all")].p90_response_sla_seconds is None


def test_a_configured_source_without_items_still_has_its_rows() -> None:
    rows = report([], sources={"acme-fb": "acme", "acme-forum": "acme"})
    assert list(rows) == [
        ("acme-fb", "acme", "office_hours"),
        ("acme-fb", "acme", "after_hours"),
        ("acme-fb", "acme", "all"),
        ("acme-forum", "acme", "office_hours"),
        ("acme-forum", "acme", "after_hours"),
        ("acme-forum", "acme", "all"),
        ("*", "acme", "all"),
        ("*", "*", "all"),
    ]
    for row in rows.values():
        assert (row.items, row.answered, row.breached_open, row.pending) == (0, 0, 0, 0)
        assert row.compliance is None
        assert row.after_hours_share is None  # null when items = 0, even on `all` rows


def test_window_is_half_open_and_uses_created_at() -> None:
    at_since = item(at=SINCE, state=IN_TIME, wall=60)
    before = item(at=SINCE - timedelta(seconds=1), state=IN_TIME, wall=60)
    at_until = item(at=UNTIL, state=IN_TIME, wall=60)
    row = report([before, at_since, at_until])[("acme-fb", "acme", "all")]
    assert row.items == 1


# --- brands and the overall row -------------------------------------------------------------

SOURCES = {"acme-fb": "acme", "acme-forum": "acme", "beta-fb": "beta", "quiet": "beta"}
MANY = [
    *ONE_SOURCE,
    item(source="acme-forum", state=IN_TIME, wall=300, responder="Cem"),
    item(source="acme-forum", period=AFTER, state=LATE, wall=4000, responder="Cem"),
    item(source="beta-fb", brand="beta", period=AFTER, state=IN_TIME, wall=100, responder="Dee"),
    due_at(AS_OF - timedelta(hours=1), source="beta-fb", brand="beta"),
]


def test_brand_and_overall_rows() -> None:
    result = build_report(MANY, since=SINCE, until=UNTIL, as_of=AS_OF, sources=SOURCES)
    keys = [(r.source, r.brand, r.period) for r in result.rows]
    periods = ("office_hours", "after_hours", "all")
    assert keys == [
        *[(s, "acme", p) for s in ("acme-fb", "acme-forum") for p in periods],
        ("*", "acme", "all"),
        *[(s, "beta", p) for s in ("beta-fb", "quiet") for p in periods],
        ("*", "beta", "all"),
        ("*", "*", "all"),
    ]
    rows = rows_by_key(result.rows)
    acme, beta, overall = (
        rows[("*", "acme", "all")],
        rows[("*", "beta", "all")],
        rows["*", "*", "all"],
    )
    assert (acme.items, acme.answered_in_time, acme.answered_late, acme.breached_open) == (
        9,
        3,
        2,
        2,
    )
    assert acme.compliance == 3 / 7
    # acme wall-clock [300, 600, 1200, 4000, 5000]: ranks 3 and 5.
    assert (acme.median_response_seconds, acme.p90_response_seconds) == (1200, 5000)
    assert acme.after_hours_share == 3 / 9
    assert (beta.items, beta.answered_in_time, beta.breached_open, beta.compliance) == (
        2,
        1,
        1,
        0.5,
    )
    assert beta.after_hours_share == 0.5
    assert (overall.items, overall.answered, overall.dismissed) == (11, 6, 1)
    assert (overall.breached_open, overall.pending) == (3, 1)
    assert overall.compliance == 4 / 9
    # Overall wall-clock [100, 300, 600, 1200, 4000, 5000]: ranks 3 and 6.
    assert (overall.median_response_seconds, overall.p90_response_seconds) == (600, 5000)
    assert overall.after_hours_share == 4 / 11
    # Source rows add up to their brand row.
    acme_sources = [r for k, r in rows.items() if k[1] == "acme" and k[0] != "*" and k[2] == "all"]
    for name in ("items", "dismissed", "answered", "breached_open", "pending"):
        assert getattr(acme, name) == sum(getattr(r, name) for r in acme_sources)


def test_brand_filter_limits_everything_to_one_brand() -> None:
    result = build_report(
        MANY, since=SINCE, until=UNTIL, as_of=AS_OF, brand="beta", sources=SOURCES
    )
    assert {r.brand for r in result.rows} == {"beta"}
    assert [(r.source, r.period) for r in result.rows if r.period == "all"] == [
        ("beta-fb", "all"),
        ("quiet", "all"),
        ("*", "all"),
    ]
    assert rows_by_key(result.rows)[("*", "beta", "all")].items == 2


def test_items_of_a_source_missing_from_the_config_still_count() -> None:
    gone = item(source="old-page", state=IN_TIME, wall=60)
    rows = report([A, gone])
    assert rows[("old-page", "acme", "all")].items == 1
    assert rows[("*", "acme", "all")].items == 2


# --- moderators -----------------------------------------------------------------------------


def test_moderator_rows() -> None:
    nobody = item(state=LATE, wall=7200)  # the platform did not name the responder
    result = build_moderator_report(
        [*MANY, nobody], since=SINCE, until=UNTIL, as_of=AS_OF, sources=SOURCES
    )
    got = [(r.brand, r.source, r.responder, r.replies, r.in_time, r.late) for r in result.rows]
    assert got == [
        ("acme", "acme-fb", "Ann", 2, 2, 0),  # A and G; F is dismissed
        ("acme", "acme-fb", "Bob", 1, 0, 1),
        ("acme", "acme-fb", None, 1, 0, 1),
        ("acme", "acme-forum", "Cem", 2, 1, 1),
        ("beta", "beta-fb", "Dee", 1, 1, 0),
    ]
    ann, bob = result.rows[0], result.rows[1]
    assert (ann.median_response_seconds, ann.p90_response_seconds) == (600, 1200)
    assert (bob.median_response_sla_seconds, bob.p90_response_sla_seconds) == (4000, 4000)
    only_beta = build_moderator_report(
        MANY, since=SINCE, until=UNTIL, as_of=AS_OF, brand="beta", sources=SOURCES
    )
    assert [r.responder for r in only_beta.rows] == ["Dee"]


# --- item listing ---------------------------------------------------------------------------


def test_item_states_as_of() -> None:
    warned = item(at=AS_OF - timedelta(minutes=50), due_in=3600)
    fresh = item(at=AS_OF - timedelta(minutes=10), due_in=3600)
    result = build_items_report(
        [A, B, C, D, F, warned, fresh], since=SINCE, until=UNTIL, as_of=AS_OF
    )
    by_permalink = {line.permalink: line for line in result.rows}
    assert [(line.state, line.outcome) for line in result.rows] == [
        ("answered_in_time", "in_time"),
        ("answered_late", "late"),
        ("dismissed", None),  # created with A and B, six hours ago
        ("breached", None),
        ("breached", None),
        ("warning", None),
        ("open", None),
    ]
    a = by_permalink[A.permalink]
    assert (a.responder, a.response_seconds, a.responded_at) == ("Ann", 600, A.responded_at)
    assert (a.author, a.period, a.weekend, a.holiday) == (
        "Ann Consumer",
        "office_hours",
        False,
        None,
    )
    assert by_permalink[F.permalink].dismissed_reason == "hidden"
    only = build_items_report(
        [A, C, warned, fresh],
        since=SINCE,
        until=UNTIL,
        as_of=AS_OF,
        states=[ItemState.WARNING, ItemState.BREACHED],
    )
    assert [line.state for line in only.rows] == ["breached", "warning"]


# --- parsing and output ---------------------------------------------------------------------


def test_parse_instant() -> None:
    assert parse_instant("2026-11-16") == datetime(2026, 11, 16, tzinfo=UTC)
    assert parse_instant("2026-11-16T09:30") == datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
    assert parse_instant("2026-11-16T09:30+01:00") == datetime(2026, 11, 16, 8, 30, tzinfo=UTC)
    assert parse_instant("2026-11-16T09:30:00Z") == datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="invalid time 'yesterday'"):
        parse_instant("yesterday")
    with pytest.raises(ValueError, match="must be before"):
        check_window(UNTIL, SINCE)
    with pytest.raises(ValueError, match="must be before"):
        build_report([], since=SINCE, until=SINCE, as_of=AS_OF)


def test_json_shape() -> None:
    body = build_report(ONE_SOURCE, since=SINCE, until=UNTIL, as_of=AS_OF).to_json()
    assert list(body) == ["since", "until", "as_of", "rows"]
    assert body["since"] == "2026-11-16T00:00:00+00:00"
    assert body["as_of"] == "2026-11-20T12:00:00+00:00"
    assert body["rows"][2]["compliance"] == 0.4
    assert body["rows"][0]["after_hours_share"] is None
    listing = build("items", [A], since=SINCE, until=UNTIL, as_of=AS_OF).to_json()
    assert listing["rows"][0]["created_at"] == A.created_at.isoformat()
    assert format_json(build_report([], since=SINCE, until=UNTIL, as_of=AS_OF)).endswith("}\n")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.4, "59s"),
        (750, "12m30s"),
        (3600, "1h00m"),
        (18600, "5h10m"),
        (183600, "2d03h"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_table_and_csv() -> None:
    result = build_report(ONE_SOURCE, since=SINCE, until=UNTIL, as_of=AS_OF)
    table = format_table(result, "summary", ZoneInfo("Europe/Amsterdam"))
    lines: dict[str, str] = {}
    for line in table.splitlines():  # the first block: the source's own rows
        lines.setdefault(line.split("  ")[0].strip(), line)
    assert lines["acme-fb (acme)"].split()[2:] == ["office_hours", "after_hours", "all"]
    assert lines["compliance"].split()[1] == "25.0%"
    assert lines["median_response_seconds"].split()[1] == "10m00s"
    assert lines["p90_response_seconds"].split()[1] == "1h23m"  # 5000 s = 1h23m20s
    rows = list(csv.DictReader(io.StringIO(format_csv(result, "summary", UTC_ZONE))))
    assert rows[0]["compliance"] == "0.25" and float(rows[0]["p90_response_seconds"]) == 5000
    assert rows[0]["after_hours_share"] == ""
    empty = format_csv(
        build_moderator_report([], since=SINCE, until=UNTIL, as_of=AS_OF), "moderator", UTC_ZONE
    )
    assert empty == (
        "brand,source,responder,replies,in_time,late,median_response_seconds,"
        "p90_response_seconds,median_response_sla_seconds,p90_response_sla_seconds\n"
    )


def _many_sources() -> list[ReportItem]:
    """Items of three sources with long names, authors and permalinks: a wide report."""
    names = ["acme-facebook-benelux", "acme-community-forum", "acme-support-board"]
    return [
        replace(x, source=name, author="Anna-Sophie van den Berg-Oosterhuis")
        for name in names
        for x in ONE_SOURCE
    ]


@pytest.mark.parametrize("kind", ["summary", "moderator", "items"])
def test_tables_fit_100_columns_and_use_the_csv_and_json_names(kind: str) -> None:
    """Default tables fit a 100-column terminal; --wide shows every column; every header is
    the CSV and JSON name of that column."""
    items = _many_sources()
    result = build(kind, items, since=SINCE, until=UNTIL, as_of=AS_OF)  # type: ignore[arg-type]
    zone = ZoneInfo("Europe/Amsterdam")
    narrow = format_table(result, kind, zone)  # type: ignore[arg-type]
    assert max(len(line) for line in narrow.splitlines()) <= 100, narrow
    csv_columns = next(csv.reader(io.StringIO(format_csv(result, kind, zone))))  # type: ignore[arg-type]
    json_keys = list(json.loads(format_json(result))["rows"][0])
    assert json_keys == csv_columns
    wide = format_table(result, kind, zone, wide=True)  # type: ignore[arg-type]
    assert wide.splitlines()[3].split() == csv_columns  # the header line, after title and blank
    if kind == "summary":  # turned on its side: one line per figure, named as in the CSV
        labels = [line.split()[0] for line in narrow.splitlines()[4:17]]
        assert labels == csv_columns[3:]
    else:
        shown = narrow.splitlines()[3].split()
        assert shown == [c for c in csv_columns if c in shown]  # CSV order, CSV names
        hidden = " ".join(narrow.split("Not shown: ")[1].split())
        assert hidden.startswith(", ".join(c for c in csv_columns if c not in shown))


def test_table_and_csv_times_are_local_with_their_offset() -> None:
    """A brand manager reads the brand's wall clock; a DST change moves the offset."""
    zone = ZoneInfo("Europe/Amsterdam")
    summer = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # 00:30 CEST on the 25th
    winter = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET, after the change
    result = build_report([], since=summer, until=winter, as_of=winter)
    title = format_table(result, "summary", zone).splitlines()[:2]
    assert "2026-10-25 00:30 +02:00 to 2026-10-25 02:30 +01:00" in title[0]
    assert "times in Europe/Amsterdam" in title[1]
    line = item_line(item(at=summer, due_in=3 * 3600), winter)
    listing = Report(since=summer, until=winter, as_of=winter, rows=(line,))
    row = next(csv.DictReader(io.StringIO(format_csv(listing, "items", zone))))
    assert row["created_at"] == "2026-10-25T00:30:00+02:00"
    assert row["due_at"] == "2026-10-25T02:30:00+01:00"


def test_an_empty_window_is_said_in_one_line_and_wide_still_lists_the_sources() -> None:
    empty = build_report([], since=SINCE, until=UNTIL, as_of=AS_OF, sources={"acme-fb": "acme"})
    zone = ZoneInfo("Europe/Amsterdam")
    lines = format_table(empty, "summary", zone).splitlines()
    assert lines[3:] == [
        "No consumer items were created in this window (--wide lists every source)."
    ]
    wide = format_table(empty, "summary", zone, wide=True)
    assert "acme-fb" in wide
