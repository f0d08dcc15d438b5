"""Webcare · Brand overview: is the promise kept, office hours vs after hours."""

from __future__ import annotations

from .grafana import (
    COLOR_TEXT,
    Board,
    Json,
    Panel,
    dashboard,
    legend,
    override,
    reduce_options,
    ref_id,
    target,
    thresholds,
    value_text,
)
from .messenger import messenger_row
from .platforms import per_platform_table
from .vocabulary import (
    ANY_IS_BAD,
    BRAND,
    BRAND_SOURCE,
    BRAND_VARIABLE,
    COMPLIANCE_STEPS,
    NEUTRAL,
    PLATFORM_VARIABLE,
    SOURCE_VARIABLE,
    UP_DOWN,
    WAIT_STEPS,
    compliance,
    increase,
    mean,
    median_and_p90,
    open_items_stat,
    rate,
    stat,
    table,
    timeseries,
    waiting_over_time,
)


def compliance_stat(window: str, title: str) -> Panel:
    """Compliance over one of the store's windows (1d, 7d, 30d), per brand and period."""
    return stat(
        title,
        f"Share of judged items answered within target, items created in the last {window}"
        " (in time / (in time + late + breached and still waiting)), per brand and period,"
        " over the selected sources: their in-time items over their judged items, so a"
        " quiet source weighs what it did, not as much as a busy one. Computed from the store"
        " once a minute, so it covers the backfilled history too and matches the brand rows"
        " of `webcare-monitor report` for the same window. No value while nothing in the"
        " window has been judged yet.",
        (compliance("brand, period", window), "{{brand}} · {{period}}"),
        text_mode="value_and_name",
        unit="percentunit",
        decimals=1,
        min=0,
        max=1,
        steps=COMPLIANCE_STEPS,
    )


def compliance_rows(b: Board) -> None:
    """SLA compliance from the store, like the report."""
    b.row("SLA compliance (from the store, like the report)")
    b.add(compliance_stat("1d", "Compliance, last 24 hours"), 8, 5)
    b.add(compliance_stat("7d", "Compliance, last 7 days"), 8, 5)
    b.add(compliance_stat("30d", "Compliance, last 30 days"), 8, 5)

    b.row("Response times: office hours vs after hours")
    sla_buckets = increase("webcare_first_response_sla_seconds_bucket", BRAND)
    b.add(
        stat(
            "First response time in the range",
            "Median and 90th percentile of the SLA time (inside the coverage calendar) from a"
            " consumer item to the brand's first reply, and the mean wall-clock time (what the"
            " consumer waited), over the replies stored in the selected range, office hours vs"
            " after hours. The percentiles are estimated from the brands' histogram buckets"
            " (every configured target is a bucket edge) and follow the Brand variable only;"
            " the report gives exact nearest-rank figures per source.",
            *median_and_p90("period", sla_buckets),
            (mean("period", "webcare_first_response_seconds"), "mean wall clock · {{period}}"),
            text_mode="value_and_name",
            unit="s",
            decimals=0,
            steps=WAIT_STEPS,
        ),
        10,
        8,
    )
    sla_time = f"webcare:first_response_sla_seconds_bucket:increase1d{{{BRAND}}}"

    def wall_clock(part: str) -> str:
        day = f"webcare:first_response_seconds_{part}:increase1d{{{BRAND_SOURCE}}}"
        return f"sum by (period) ({day})"

    b.add(
        timeseries(
            "First response time, rolling 24 hours",
            "Over the previous 24 hours at each point, office vs after hours: median and p90"
            " SLA time (what the target is judged on: only the time inside the coverage"
            " calendar; per brand, so the Source variable does not narrow it) and the mean"
            " wall-clock time (what the consumer waited). From the recording rules"
            " webcare:first_response_sla_seconds_bucket:increase1d and"
            " webcare:first_response_seconds_{sum,count}:increase1d.",
            *median_and_p90("period", sla_time),
            (
                f"{wall_clock('sum')} / {wall_clock('count')}",
                "mean wall clock · {{period}}",
            ),
            unit="s",
        ),
        14,
        8,
    )


def traffic_row(b: Board) -> None:
    """When consumers post: the after-hours share and the week hour by hour."""
    b.row("Traffic: when consumers post")
    after_hours = increase("webcare_items_total", f'{BRAND_SOURCE}, period="after_hours"')
    b.add(
        stat(
            "After-hours share",
            "Share of the consumer items stored in the selected range that arrived outside"
            " office hours (the source's office calendar).",
            (
                f"sum({after_hours}) / sum({increase('webcare_items_total')})",
                "after hours",
            ),
            unit="percentunit",
            decimals=0,
            min=0,
            max=1,
            steps=NEUTRAL,
        ),
        5,
        8,
    )
    b.add(
        Panel(
            "piechart",
            "Items by period",
            "Consumer items stored in the selected range, office hours vs after hours.",
            [
                target(
                    f"sum by (period) ({increase('webcare_items_total')})",
                    "{{period}}",
                    instant=True,
                )
            ],
            {
                "displayLabels": ["percent"],
                "legend": {**legend(placement="bottom"), "values": ["value"]},
                "orientation": "auto",
                "pieType": "donut",
                "reduceOptions": reduce_options(),
                "sort": "desc",
                "tooltip": {"mode": "single", "sort": "none"},
            },
            unit="short",
            decimals=0,
            color="palette-classic",
            custom={"hideFrom": {"legend": False, "tooltip": False, "viz": False}},
        ),
        5,
        8,
    )
    b.add(
        timeseries(
            "Consumer items per hour (over 7 days: the week hour by hour)",
            "Arrival rate of consumer items, stacked office hours / after hours. Over the"
            " default 7-day range each bar is one hour of the week, so evenings, nights and"
            " the weekend stand out. Counts items as this service stores them: the one-time"
            " backfill of history shows up as one spike at the first start.",
            (f"sum by (period) ({rate('webcare_items_total')}) * 3600", "{{period}}"),
            bars=True,
            stacked=True,
            unit="short",
            decimals=1,
            max_data_points=168,
        ),
        14,
        8,
    )


def waiting_row(b: Board) -> None:
    """What waits now, and the breaches."""
    b.row("Waiting now, and breaches")
    b.add(
        stat(
            "Waiting for a first reply",
            "Consumer items nobody has answered yet (open, past the warning point, or breached).",
            (f"sum(webcare_open_items{{{BRAND_SOURCE}}})", "waiting"),
            unit="short",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 5), ("red", 20)),
        ),
        4,
        5,
    )
    b.add(
        open_items_stat(
            "breached",
            "Breached, still waiting",
            "Unanswered items past their due time.",
            ANY_IS_BAD,
        ),
        4,
        5,
    )
    b.add(
        stat(
            "Oldest waiting",
            "Age of the oldest unanswered consumer item (0 when nothing waits).",
            (f"max(webcare_oldest_open_item_age_seconds{{{BRAND_SOURCE}}})", "oldest"),
            unit="s",
            decimals=0,
            steps=WAIT_STEPS,
        ),
        4,
        5,
    )
    b.add(
        stat(
            "Breaches in the range",
            "Items that were still unanswered at their due time (after one re-fetch of the"
            " thread), in the selected range.",
            (f"sum by (period) ({increase('webcare_sla_breaches_total')})", "{{period}}"),
            text_mode="value_and_name",
            unit="short",
            decimals=0,
            steps=ANY_IS_BAD,
        ),
        12,
        5,
    )
    b.add(
        timeseries(
            "Breaches over time (per hour)",
            "How many items per hour reached their due time unanswered, per source and period.",
            (
                f"sum by (source, period) ({rate('webcare_sla_breaches_total')}) * 3600",
                "{{source}} · {{period}}",
            ),
            bars=True,
            stacked=True,
            unit="short",
            decimals=1,
        ),
        12,
        8,
    )
    b.add(waiting_over_time("Unanswered consumer items by SLA state."), 12, 8)


def per_source_table() -> Panel:
    """One row per source, one column per query."""

    def compliance_7d(period: str) -> str:
        """Rolling 7-day compliance per source, in one period."""
        return compliance("source", "7d", f'{BRAND_SOURCE}, period="{period}"')

    columns = {
        "Items": f"sum by (source) ({increase('webcare_items_total')})",
        "Compliance 7d office": compliance_7d("office_hours"),
        "Compliance 7d after hours": compliance_7d("after_hours"),
        "Mean reply": mean("source", "webcare_first_response_seconds"),
        "Breaches": f"sum by (source) ({increase('webcare_sla_breaches_total')})",
        "Waiting now": f"sum by (source) (webcare_open_items{{{BRAND_SOURCE}}})",
        "Oldest waiting": (
            f"max by (source) (webcare_oldest_open_item_age_seconds{{{BRAND_SOURCE}}})"
        ),
        "Up": f"max by (source) (webcare_source_up{{{BRAND_SOURCE}}})",
    }
    return table(
        "Per source",
        "One row per source: items stored and replies in the selected range, rolling"
        " 7-day compliance from the store, what waits now and whether the source is polled"
        " successfully.",
        *((expr, name) for name, expr in columns.items()),
        sort_by="Compliance 7d after hours",
        descending=False,
        # Merged queries arrive as "Value #<refId>" columns.
        rename={f"Value #{ref_id(n)}": name for n, name in enumerate(columns)},
        overrides=[
            *(
                override(
                    name,
                    unit="percentunit",
                    decimals=1,
                    thresholds=COMPLIANCE_STEPS,
                    **COLOR_TEXT,
                )
                for name in ("Compliance 7d office", "Compliance 7d after hours")
            ),
            override("Mean reply", unit="s", decimals=0),
            override("Oldest waiting", unit="s", decimals=0),
            override("Up", mappings=value_text(UP_DOWN), **COLOR_TEXT),
        ],
    )


def per_moderator_table() -> Panel:
    """First replies and their share per responder."""
    replies = f"sum by (source, moderator) ({increase('webcare_moderator_responses_total')})"
    total = f"sum({increase('webcare_moderator_responses_total')})"
    return table(
        "Per moderator",
        "First replies per roster person (their roster id; replies by anyone the roster"
        " does not list count as other) in the selected range, and their share of all"
        " first replies. Names per responder: webcare-monitor report --by moderator.",
        (replies, "replies"),
        (f"{replies} / scalar({total})", "share"),
        sort_by="First replies",
        descending=True,
        rename={
            "moderator": "Moderator",
            "source": "Source",
            "Value #A": "First replies",
            "Value #B": "Share",
        },
        overrides=[
            override("First replies", decimals=0),
            override("Share", unit="percentunit", decimals=1),
        ],
    )


def brand_overview() -> Json:
    """The dashboard for the brand and the team lead."""
    b = Board()
    compliance_rows(b)
    traffic_row(b)
    waiting_row(b)
    messenger_row(b)
    b.row("Per platform, per source and per moderator")
    b.add(per_platform_table(), 24, 6)
    b.add(per_source_table(), 24, 8)
    b.add(per_moderator_table(), 24, 8)
    return dashboard(
        uid="webcare-brand-overview",
        title="Webcare · Brand overview",
        description="Is the promise kept? SLA compliance, response times office vs after"
        " hours, when consumers post, what waits, per source and per moderator.",
        board=b,
        variables=[BRAND_VARIABLE, PLATFORM_VARIABLE, SOURCE_VARIABLE],
        time_from="now-7d",
        refresh="1m",
    )
