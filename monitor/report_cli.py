"""`webcare-monitor report`: the report from the store as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import re
import sys
import textwrap
from dataclasses import fields
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from monitor.config import Config
from monitor.durations import human_duration
from monitor.report import (
    ALL,
    AnyReport,
    ItemLine,
    ModeratorRow,
    ReportItem,
    ReportKind,
    ReportRow,
    build,
    check_window,
    parse_instant,
)

FORMATS = ("table", "csv", "json")
# Fields holding a fraction (shown as a percentage) rather than a count or seconds.
_RATIOS = frozenset({"compliance", "after_hours_share"})
# A default table fits a 100-column terminal; --wide shows every column.
TABLE_WIDTH = 100
# Which columns a narrow table keeps first (the rest follow while they fit). The table shows
# them in the order of the CSV and JSON, under the same names.
_PRIORITY: dict[str, tuple[str, ...]] = {
    "moderator": (
        "responder",
        "replies",
        "in_time",
        "late",
        "median_response_seconds",
        "p90_response_seconds",
        "source",
    ),
    "items": ("id", "created_at", "state", "response_seconds", "source", "author", "responder"),
}
_TABLE_TITLES = {"summary": "SLA report", "moderator": "Replies per moderator", "items": "Items"}


def _short_time(moment: datetime, zone: ZoneInfo) -> str:
    """ "2026-11-26 23:40 +01:00": local, with the offset."""
    local = moment.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def _cell(name: str, value: Any, zone: ZoneInfo) -> str:
    """A value as a person reads it in the table."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _short_time(value, zone)
    if name in _RATIOS:
        return f"{value * 100:.1f}%"
    if name.endswith("_seconds"):
        return human_duration(float(value))
    return str(value)


def _raw(value: Any, zone: ZoneInfo) -> str:
    """A value as a program reads it in CSV: raw numbers, local ISO instants with their
    offset, empty for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat()
    return str(value)


_ROW_TYPES: dict[ReportKind, type[ReportRow | ModeratorRow | ItemLine]] = {
    "summary": ReportRow,
    "moderator": ModeratorRow,
    "items": ItemLine,
}


def _title(report: AnyReport, kind: ReportKind, zone: ZoneInfo) -> list[str]:
    """Two lines: the window, then as-of instant and time zone."""
    return [
        f"{_TABLE_TITLES[kind]}: items created {_short_time(report.since, zone)} to "
        f"{_short_time(report.until, zone)}",
        f"Outcomes as of {_short_time(report.as_of, zone)}; times in {zone.key}.",
    ]


def _numeric(kind: ReportKind) -> dict[str, bool]:
    """Per column: right-aligned (a number) or left-aligned (text)."""
    # Annotations are strings here (postponed evaluation): "int", "float | None", ...
    return {f.name: str(f.type).split(" ")[0] in ("int", "float") for f in fields(_ROW_TYPES[kind])}


def _fitting(columns: list[str], widths: dict[str, int], kind: ReportKind) -> list[str]:
    """The columns a TABLE_WIDTH-wide table shows: by priority while they fit, in CSV order."""
    order = [*_PRIORITY.get(kind, ()), *columns]
    chosen: set[str] = set()
    used = -2
    for name in dict.fromkeys(order):
        if used + 2 + widths[name] <= TABLE_WIDTH:
            chosen.add(name)
            used += 2 + widths[name]
    return [c for c in columns if c in chosen]


def _row_table(report: AnyReport, kind: ReportKind, zone: ZoneInfo, *, wide: bool) -> list[str]:
    """One line per row; without `wide`, only the columns that fit TABLE_WIDTH."""
    numeric = _numeric(kind)
    columns = list(numeric)
    cells = [{c: _cell(c, getattr(row, c), zone) for c in columns} for row in report.rows]
    widths = {c: max([len(c), *(len(r[c]) for r in cells)]) for c in columns}
    shown = columns if wide else _fitting(columns, widths, kind)

    def line(values: dict[str, str]) -> str:
        parts = [
            values[c].rjust(widths[c]) if numeric[c] else values[c].ljust(widths[c]) for c in shown
        ]
        return "  ".join(parts).rstrip()

    out = [line({c: c for c in shown}), line({c: "-" * widths[c] for c in shown})]
    out.extend(line(r) for r in cells)
    if not report.rows:
        out.append("(no rows)")
    hidden = [c for c in columns if c not in shown]
    if hidden:
        note = f"Not shown: {', '.join(hidden)} (--wide shows every column)."
        out += ["", *textwrap.wrap(note, TABLE_WIDTH)]
    return out


def _summary_blocks(report: AnyReport, zone: ZoneInfo) -> list[str]:
    """The summary turned on its side: one block per source, one line per figure, one
    column per period, so every figure fits a terminal under its CSV name."""
    blocks: dict[tuple[str, str], list[Any]] = {}
    for row in report.rows:
        blocks.setdefault((row.source, row.brand), []).append(row)
    figures = [c for c in _numeric("summary") if c not in ("source", "brand", "period")]
    label = max(len(f) for f in figures)
    out: list[str] = []
    for (source, brand), rows in blocks.items():
        columns = [
            [row.period, *(_cell(f, getattr(row, f), zone) for f in figures)] for row in rows
        ]
        widths = [max(len(v) for v in column) for column in columns]
        # Total rows carry ALL as source (a brand's total) and as brand (the grand total).
        source_name = "all sources" if source == ALL else source
        brand_name = "all brands" if brand == ALL else brand
        heads = [f"{source_name} ({brand_name})", *figures]
        width = max(label, len(heads[0]))
        for n, head in enumerate(heads):
            values = [column[n].rjust(w) for column, w in zip(columns, widths, strict=True)]
            out.append("  ".join([head.ljust(width), *values]).rstrip())
        out.append("")
    if not report.rows:
        out.append("(no rows)")
    return out


def format_table(report: AnyReport, kind: ReportKind, zone: ZoneInfo, *, wide: bool = False) -> str:
    """An aligned text table: numbers right, text left, percentages and durations humanised;
    TABLE_WIDTH columns at most unless `wide`."""
    if kind == "summary" and not wide:
        body = _summary_blocks(report, zone)
    else:
        body = _row_table(report, kind, zone, wide=wide)
    return "\n".join([*_title(report, kind, zone), "", *body]).rstrip("\n") + "\n"


def format_csv(report: AnyReport, kind: ReportKind, zone: ZoneInfo) -> str:
    """CSV with a header row and raw values."""
    columns = [f.name for f in fields(_ROW_TYPES[kind])]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in report.rows:
        writer.writerow([_raw(getattr(row, c), zone) for c in columns])
    return buffer.getvalue()


def format_json(report: AnyReport) -> str:
    """The JSON document of DESIGN.md section 4: {"since", "until", "as_of", "rows"}."""
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"


def render(
    report: AnyReport, fmt: str, kind: ReportKind, zone: ZoneInfo, *, wide: bool = False
) -> str:
    """The report in the asked format; table and CSV times in `zone` (JSON stays UTC)."""
    if fmt == "json":
        return format_json(report)
    if fmt == "csv":
        return format_csv(report, kind, zone)
    return format_table(report, kind, zone, wide=wide)


DEFAULT_DAYS = 7


def brand_zone(config: Config, brand: str | None) -> ZoneInfo:
    """The time zone of the brand's (else the first source's) office calendar."""
    source = next((s for s in config.sources if brand in (None, s.brand)), config.sources[0])
    return config.calendar(source.calendar).timezone


def report_window(
    args: argparse.Namespace, config: Config, now: datetime
) -> tuple[datetime, datetime]:
    """[since, until) from --since/--until, --last or --month (local days of the brand);
    without any: the last 7 days, today included."""
    zone = brand_zone(config, args.brand)
    explicit = args.since is not None or args.until is not None
    if explicit and (args.month is not None or args.last is not None):
        raise ValueError("give either --since/--until or --last / --month, not both")
    if args.month is not None:
        try:
            first = datetime.strptime(args.month, "%Y-%m").replace(tzinfo=zone)
        except ValueError as err:
            raise ValueError(f"invalid month {args.month!r}: use YYYY-MM, e.g. 2026-11") from err
        after = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        return first.astimezone(UTC), after.astimezone(UTC)
    if explicit:
        if args.since is None or args.until is None:
            raise ValueError("give both --since and --until (or --last / --month)")
        return parse_instant(args.since, zone), parse_instant(args.until, zone)
    days = DEFAULT_DAYS
    if args.last is not None:
        match = re.fullmatch(r"(\d+)d", args.last.strip())
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"invalid --last {args.last!r}: a number of days, e.g. 30d")
        days = int(match.group(1))
    local_now = now.astimezone(zone)
    tomorrow = datetime.combine(local_now.date() + timedelta(days=1), time(), tzinfo=zone)
    start = datetime.combine(tomorrow.date() - timedelta(days=days), time(), tzinfo=zone)
    return start.astimezone(UTC), tomorrow.astimezone(UTC)


async def _load_items(
    config: Config, *, since: datetime, until: datetime, brand: str | None
) -> list[ReportItem]:
    from monitor.store import Store, create_engine, upgrade
    from monitor.store.reports import report_items

    engine = create_engine(config.database_url)
    try:
        await upgrade(engine)
        return await report_items(
            Store(engine), since=since, until=until, brands=None if brand is None else [brand]
        )
    finally:
        await engine.dispose()


def _kind(args: argparse.Namespace) -> ReportKind:
    if args.items:
        return "items"
    return "moderator" if args.by == "moderator" else "summary"


def cmd_report(args: argparse.Namespace) -> int:
    """`report -c CONFIG --since ISO --until ISO ...`: print the report of a window."""
    # Imported here: monitor.cli imports this module to register the subcommand.
    from monitor.cli import _load_or_exit

    config = _load_or_exit(args.config)
    try:
        args.since, args.until = report_window(args, config, datetime.now(UTC))
        check_window(args.since, args.until)
    except ValueError as err:
        print(f"webcare-monitor report: error: {err}", file=sys.stderr)
        return 2
    sources = {s.name: s.brand for s in config.sources}
    if args.brand is not None and args.brand not in sources.values():
        known = ", ".join(sorted(set(sources.values())))
        print(
            f"webcare-monitor report: error: unknown brand {args.brand!r} (configured: {known})",
            file=sys.stderr,
        )
        return 2
    try:
        items = asyncio.run(
            _load_items(config, since=args.since, until=args.until, brand=args.brand)
        )
    except (OSError, SQLAlchemyError) as err:
        print(f"webcare-monitor report: cannot read the store: {err}", file=sys.stderr)
        return 1
    # Judged after loading: every reply stored by then is at or before this instant.
    as_of = datetime.now(UTC)
    kind = _kind(args)
    report = build(
        kind,
        items,
        since=args.since,
        until=args.until,
        as_of=as_of,
        brand=args.brand,
        sources=sources,
    )
    zone = brand_zone(config, args.brand)
    sys.stdout.write(render(report, args.format, kind, zone, wide=args.wide))
    return 0


def add_report_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `report` subcommand."""
    report = subparsers.add_parser(
        "report",
        help="SLA report over the items created in a window",
        description=(
            "Items created in [since, until); outcomes judged as of now. Without a window: the"
            " last 7 days (today included) in the brand's time zone. A --since/--until time"
            " without an offset is in the brand's time zone too."
        ),
    )
    report.add_argument("-c", "--config", required=True, help="TOML config file")
    window = report.add_mutually_exclusive_group()
    window.add_argument("--last", default=None, help="the last N days, e.g. 30d (default 7d)")
    window.add_argument("--month", default=None, help="a calendar month, e.g. 2026-11")
    report.add_argument(
        "--since", default=None, help="window start, ISO 8601; without an offset: brand's time"
    )
    report.add_argument("--until", default=None, help="window end, exclusive (same form)")
    report.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    report.add_argument("--brand", default=None, help="only this brand")
    report.add_argument(
        "--wide",
        action="store_true",
        help=f"table: one line per row with every column (default: fits {TABLE_WIDTH} columns)",
    )
    detail = report.add_mutually_exclusive_group()
    detail.add_argument("--by", choices=["moderator"], default=None, help="rows per responder")
    detail.add_argument("--items", action="store_true", help="list the items themselves")
    report.set_defaults(func=cmd_report)
