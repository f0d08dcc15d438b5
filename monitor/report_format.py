"""The report as a person or a program reads it: an aligned table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.durations import human_duration
from monitor.report import (
    ALL,
    WHERE_APPLIES,
    AnyReport,
    ItemLine,
    ModeratorRow,
    ReportKind,
    ReportRow,
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
    "items": (
        "id",
        "created_at",
        "state",
        "lost_window",
        "response_seconds",
        "source",
        "author",
        "responder",
    ),
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
    """A value as a program reads it in CSV: raw numbers, local ISO instants, empty for null."""
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


def _applying(columns: list[str], rows: Sequence[Any]) -> list[str]:
    """The columns without the WHERE_APPLIES ones that apply to none of `rows`."""
    return [
        c
        for c in columns
        if c not in WHERE_APPLIES or any(getattr(row, c) is not None for row in rows)
    ]


def _numeric(kind: ReportKind) -> dict[str, bool]:
    """Per column: right-aligned (a number) or left-aligned (text)."""
    # Annotations are strings here (postponed evaluation): "int", "float | None", ...
    return {f.name: str(f.type).split(" ")[0] in ("int", "float") for f in fields(_ROW_TYPES[kind])}


def _fitting(columns: list[str], widths: dict[str, int], kind: ReportKind) -> list[str]:
    """The columns a TABLE_WIDTH-wide table shows: by priority while they fit, in CSV order."""
    order = [c for c in (*_PRIORITY.get(kind, ()), *columns) if c in columns]
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
    columns = _applying(list(numeric), report.rows)
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
    """The summary on its side: a block per source, a line per figure, a column per period."""
    # On its side so that every figure fits a terminal under its CSV name.
    if not any(isinstance(row, ReportRow) and row.items for row in report.rows):
        # Blocks of zeros say nothing a first-time user can use (--wide and CSV still list them).
        return ["No consumer items were created in this window (--wide lists every source)."]
    blocks: dict[tuple[str, str], list[Any]] = {}
    for row in report.rows:
        blocks.setdefault((row.source, row.brand), []).append(row)
    figures = [c for c in _numeric("summary") if c not in ("source", "brand", "period")]
    label = max(len(f) for f in figures)
    out: list[str] = []
    for (source, brand), rows in blocks.items():
        shown = _applying(figures, rows)
        columns = [[row.period, *(_cell(f, getattr(row, f), zone) for f in shown)] for row in rows]
        widths = [max(len(v) for v in column) for column in columns]
        # Total rows carry ALL as source (a brand's total) and as brand (the grand total).
        source_name = "all sources" if source == ALL else source
        brand_name = "all brands" if brand == ALL else brand
        heads = [f"{source_name} ({brand_name})", *shown]
        width = max(label, len(heads[0]))
        for n, head in enumerate(heads):
            values = [column[n].rjust(w) for column, w in zip(columns, widths, strict=True)]
            out.append("  ".join([head.ljust(width), *values]).rstrip())
        out.append("")
    if not report.rows:
        out.append("(no rows)")
    return out


def format_table(report: AnyReport, kind: ReportKind, zone: ZoneInfo, *, wide: bool = False) -> str:
    """An aligned table, TABLE_WIDTH wide unless `wide`; percentages and durations humanised."""
    if kind == "summary" and not wide:
        body = _summary_blocks(report, zone)
    else:
        body = _row_table(report, kind, zone, wide=wide)
    return "\n".join([*_title(report, kind, zone), "", *body]).rstrip("\n") + "\n"


def format_csv(report: AnyReport, kind: ReportKind, zone: ZoneInfo) -> str:
    """CSV with a header row and raw values."""
    columns = _applying([f.name for f in fields(_ROW_TYPES[kind])], report.rows)
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
