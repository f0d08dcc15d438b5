"""What the webcare dashboards share: label filters, thresholds, variables, queries, panel kinds."""

from __future__ import annotations

from typing import Any

from .grafana import (
    Json,
    Panel,
    override,
    query_variable,
    stat_options,
    table_custom,
    target,
    thresholds,
    timeseries_custom,
    timeseries_options,
)

# The label filter every per-source webcare query uses (every per-source metric has both).
BRAND_SOURCE = 'brand=~"$brand", source=~"$source"'
# The filter of the per-brand metrics (the SLA response-time histogram has no source label).
BRAND = 'brand=~"$brand"'
RECEIVER = 'receiver=~"$receiver"'
# The SLO of deploy/prometheus/rules/webcare-alerts.yml: 95% answered within target.
ERROR_BUDGET = 0.05

# Compliance: red below 90%, orange below the 95% objective, green at or above it.
COMPLIANCE_STEPS = thresholds(("red", None), ("orange", 0.9), ("green", 0.95))
# Waiting time: the demo's targets are 30 min (after hours) and 60 min (office hours).
WAIT_STEPS = thresholds(("green", None), ("orange", 1800), ("red", 3600))
ANY_IS_BAD = thresholds(("green", None), ("red", 1))
# Counts that are neither good nor bad.
NEUTRAL = thresholds(("blue", None))
# Delay in seconds: orange from 5 minutes, red from 15.
MINUTES_STEPS = thresholds(("green", None), ("orange", 300), ("red", 900))
UP_DOWN = {"1": ("up", "green"), "0": ("down", "red")}

BRAND_VARIABLE = query_variable("brand", "Brand", "label_values(webcare_source_up, brand)")
# The channel (Facebook wall, Messenger, Instagram, a forum): a source's type. Only
# webcare_source_up carries it, so it narrows the Source variable; queries filter on source.
PLATFORM_VARIABLE = query_variable(
    "platform", "Platform", 'label_values(webcare_source_up{brand=~"$brand"}, platform)'
)
# Its "All" is the sources the query lists, not ".*": so that with every source selected the
# per-source panels still show only the chosen brands' and platforms' sources.
SOURCE_VARIABLE = query_variable(
    "source",
    "Source",
    'label_values(webcare_source_up{brand=~"$brand", platform=~"$platform"}, source)',
    all_value=None,
)
RECEIVER_VARIABLE = query_variable(
    "receiver", "Alert receiver", "label_values(webcare_alert_outbox_pending, receiver)"
)
JOB_VARIABLE = query_variable(
    "job", "Prometheus job", "label_values(webcare_build_info, job)", include_all=False
)

# A PromQL expression and its legend.
Query = tuple[str, str]


# --- queries --------------------------------------------------------------------------------------


def increase(metric: str, filters: str = BRAND_SOURCE) -> str:
    """How much a counter (or histogram bucket) grew over the dashboard's time range."""
    return f"increase({metric}{{{filters}}}[$__range])"


def rate(metric: str, filters: str = BRAND_SOURCE) -> str:
    """A counter's per-second rate at each point of a graph."""
    return f"rate({metric}{{{filters}}}[$__rate_interval])"


def histogram_quantile(q: float, by: str, buckets: str) -> str:
    """The q-quantile per `by` label of a bucket expression (e.g. increase(..._bucket))."""
    return f"histogram_quantile({q}, sum by (le, {by}) ({buckets}))"


def mean(by: str, summary: str, over: str = "increase", filters: str = BRAND_SOURCE) -> str:
    """A summary's mean per `by` label over the range (`over`: increase or rate)."""
    window = "$__range" if over == "increase" else "$__rate_interval"

    def part(suffix: str) -> str:
        return f"sum by ({by}) ({over}({summary}_{suffix}{{{filters}}}[{window}]))"

    return f"{part('sum')} / {part('count')}"


def compliance(by: str, window: str, filters: str = BRAND_SOURCE) -> str:
    """Exact compliance of the selected sources per `by`: in time over judged, both summed."""

    def part(metric: str) -> str:
        return f'sum by ({by}) (webcare_sla_{metric}{{{filters}, window="{window}"}})'

    return f"{part('in_time')} / {part('judged')}"


def median_and_p90(by: str, buckets: str) -> list[Query]:
    """The median and the 90th percentile, legends such as "p90 · {{source}}"."""
    label = "{{" + by + "}}"
    return [
        (histogram_quantile(0.5, by, buckets), f"median · {label}"),
        (histogram_quantile(0.9, by, buckets), f"p90 · {label}"),
    ]


# --- panels ---------------------------------------------------------------------------------------


def stat(
    title: str,
    description: str,
    *queries: Query,
    text_mode: str = "auto",
    color_mode: str = "value",
    **fields: Any,
) -> Panel:
    """A stat panel of instant queries; `fields` are Panel's field options (unit, steps...)."""
    return Panel(
        "stat",
        title,
        description,
        [target(expr, name, instant=True) for expr, name in queries],
        stat_options(text_mode=text_mode, color_mode=color_mode),
        **fields,
    )


def timeseries(
    title: str,
    description: str,
    *queries: Query,
    legend_table: bool = False,
    bars: bool = False,
    stacked: bool = False,
    threshold_lines: bool = False,
    **fields: Any,
) -> Panel:
    """A time series panel, one colour per series; `fields` as for stat()."""
    return Panel(
        "timeseries",
        title,
        description,
        [target(expr, name) for expr, name in queries],
        timeseries_options(legend_table=legend_table),
        custom=timeseries_custom(bars=bars, stacked=stacked, threshold_lines=threshold_lines),
        color="palette-classic",
        **fields,
    )


def table(
    title: str,
    description: str,
    *queries: Query,
    sort_by: str,
    descending: bool,
    rename: dict[str, str],
    overrides: list[Json],
) -> Panel:
    """A table of instant queries; several are merged into one row per label set."""
    merge = [{"id": "merge", "options": {}}] if len(queries) > 1 else []
    organize = {
        "id": "organize",
        "options": {"excludeByName": {"Time": True}, "indexByName": {}, "renameByName": rename},
    }
    return Panel(
        "table",
        title,
        description,
        [target(expr, name, instant=True, table=True) for expr, name in queries],
        {
            "cellHeight": "sm",
            "frameIndex": 0,
            "showHeader": True,
            "sortBy": [{"desc": descending, "displayName": sort_by}],
        },
        custom=table_custom(),
        transformations=[*merge, organize],
        overrides=overrides,
    )


def open_items_stat(state: str, title: str, description: str, steps: Json) -> Panel:
    """How many unanswered items are in one SLA state, on a coloured background."""
    return stat(
        title,
        description,
        (f'sum(webcare_open_items{{{BRAND_SOURCE}, state="{state}"}})', state),
        color_mode="background",
        unit="short",
        decimals=0,
        steps=steps,
    )


def waiting_over_time(description: str) -> Panel:
    """Unanswered items stacked by SLA state, in the states' own colours (two dashboards)."""
    return timeseries(
        "Waiting over time",
        description,
        (f"sum by (state) (webcare_open_items{{{BRAND_SOURCE}}})", "{{state}}"),
        stacked=True,
        unit="short",
        decimals=0,
        overrides=[
            override("breached", color={"fixedColor": "red", "mode": "fixed"}),
            override("warning", color={"fixedColor": "orange", "mode": "fixed"}),
            override("open", color={"fixedColor": "blue", "mode": "fixed"}),
        ],
    )
