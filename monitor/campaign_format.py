"""The campaign report as a person or a program reads it: blocks of figures, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import fields
from zoneinfo import ZoneInfo

from monitor.campaign import CampaignFigures, CampaignReport
from monitor.report_format import _cell, _raw, _short_time
from monitor.words import counted

# The figures in blocks, under their JSON and CSV names; indented ones are part of the line above.
_POSTS = ("posts", "  authors", "  brand_posts", "  broadcasts", "  chatter", "  interactions")
_INTERACTIONS = (
    "interactions",
    "  followed_up",
    "    answered_in_time",
    "    answered_late",
    "  waiting",
    "    breached",
    "  dismissed",
    "  not_tracked",
)
# The report's SLA figures over the interactions' items.
_SLA = (
    "compliance",
    "median_response_seconds",
    "p90_response_seconds",
    "median_response_sla_seconds",
    "p90_response_sla_seconds",
)


def headline(report: CampaignReport) -> str:
    """The line to read first: "639 posts, 96 partner broadcasts, 3 interactions, 0 followed up"."""
    f = report.figures
    parts = [
        counted(f.posts, "post"),
        counted(f.broadcasts, "partner broadcast"),
        counted(f.interactions, "interaction"),
        f"{f.followed_up} followed up",
    ]
    if f.waiting:
        parts.append(f"{f.waiting} waiting ({f.breached} past due)")
    return f"#{report.tag}: {', '.join(parts)}."


def _figures(report: CampaignReport, blocks: Sequence[Sequence[str]], zone: ZoneInfo) -> list[str]:
    """A line per figure, the name indented as given and the values aligned across the blocks;
    a blank line between blocks."""
    cells = [
        [(name, _cell(name.strip(), getattr(report.figures, name.strip()), zone)) for name in block]
        for block in blocks
    ]
    width = max(len(name) for block in cells for name, _ in block) + 2
    value_width = max(len(value) for block in cells for _, value in block)
    out: list[str] = []
    for block in cells:
        out += ["", *(f"{name.ljust(width)}{value.rjust(value_width)}" for name, value in block)]
    return out[1:]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[str]) -> list[str]:
    """An aligned table: numbers (the `right` columns) to the right, text to the left."""
    widths = [max(len(h), *(len(r[n]) for r in rows)) for n, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if h in right else v.ljust(w)
            for h, v, w in zip(header, values, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def format_table(report: CampaignReport, zone: ZoneInfo) -> str:
    """Headline, figures, SLA, sources, then the interactions still waiting with their links."""
    out = [
        f"Campaign #{report.tag}: posts created {_short_time(report.since, zone)} to "
        f"{_short_time(report.until, zone)}" + (f", brand {report.brand}" if report.brand else ""),
        f"Outcomes as of {_short_time(report.as_of, zone)}; times in {zone.key}.",
        "",
        headline(report),
        "",
        *_figures(report, (_POSTS, _INTERACTIONS, _SLA), zone),
    ]
    if report.sources:
        counts = ("posts", "brand_posts", "broadcasts", "chatter", "interactions")
        rows = [
            [s.source, s.platform, *(str(getattr(s, c)) for c in counts)] for s in report.sources
        ]
        out += ["", *_table(["source", "platform", *counts], rows, set(counts))]
    if report.waiting:
        out += ["", f"Waiting for an answer ({len(report.waiting)}), oldest first:"]
        rows = [
            [
                _short_time(w.created_at, zone),
                _cell("waited_seconds", w.waited_seconds, zone),
                w.state,
                w.source,
                _cell("author", w.author, zone),
                _cell("permalink", w.permalink, zone),
            ]
            for w in report.waiting
        ]
        header = ["created_at", "waited", "state", "source", "author", "permalink"]
        out += _table(header, rows, {"waited"})
    return "\n".join(out) + "\n"


def format_csv(report: CampaignReport, zone: ZoneInfo) -> str:
    """One header row and one row: the window, then every figure, raw (times in `zone`)."""
    figures = [f.name for f in fields(CampaignFigures)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["campaign", "since", "until", "as_of", "brand", *figures])
    window = (report.since, report.until, report.as_of)
    writer.writerow(
        [
            report.tag,
            *(_raw(moment, zone) for moment in window),
            _raw(report.brand, zone),
            *(_raw(getattr(report.figures, name), zone) for name in figures),
        ]
    )
    return buffer.getvalue()


def render(report: CampaignReport, fmt: str, zone: ZoneInfo) -> str:
    """The campaign report in the asked format (table, csv or json; JSON stays in UTC)."""
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return format_csv(report, zone)
    return format_table(report, zone)
