"""Build the Grafana dashboards (`python dashboards/build.py` rewrites dashboards/*.json).

The JSON files are committed (Grafana provisions them as they are); this script is their source,
so the three dashboards share one datasource variable, one set of template variables and one
style. tests/unit/test_dashboards.py fails when a JSON file differs from what this script builds,
validates each one against Grafana's published schema (dashboards/schema/) and lints the PromQL;
tests/integration/test_dashboards_prometheus.py runs every query against a real Prometheus.

Only the standard library: CI runs it without anything installed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The classic dashboard model of Grafana 13 (@grafana/schema 13.2.3: defaultDashboard).
SCHEMA_VERSION = 42
# The panel plugins' version in that release (panelcfg `pluginVersion`).
PLUGIN_VERSION = "13.2.2"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Provisioned by dashboards/provisioning/datasources/webcare-prometheus.yaml.
DEFAULT_DATASOURCE_UID = "webcare-prometheus"

# Label filters every webcare query uses; metrics with only a `source` label use SOURCE.
BRAND_SOURCE = 'brand=~"$brand", source=~"$source"'
SOURCE = 'source=~"$source"'
RECEIVER = 'receiver=~"$receiver"'
# The SLO of deploy/prometheus/rules/webcare-alerts.yml: 95% answered within target.
ERROR_BUDGET = 0.05

Json = dict[str, Any]


# --- building blocks ----------------------------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Json:
    """A Prometheus query of a panel (refId is set by the panel)."""
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": " ".join(expr.split()),
        "format": "table" if table else "time_series",
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": "",
    }


def thresholds(*steps: tuple[str, float | None]) -> Json:
    """Absolute thresholds; the first step is the base colour (value None)."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in steps],
    }


GREEN_ONLY = thresholds(("green", None))
# Compliance: red below 90%, orange below the 95% objective, green at or above it.
COMPLIANCE_STEPS = thresholds(("red", None), ("orange", 0.9), ("green", 0.95))
# Waiting time: the demo's targets are 30 min (after hours) and 60 min (office hours).
WAIT_STEPS = thresholds(("green", None), ("orange", 1800), ("red", 3600))
ANY_IS_BAD = thresholds(("green", None), ("red", 1))


def reduce_options(calcs: str = "lastNotNull") -> Json:
    return {"calcs": [calcs], "fields": "", "values": False}


def stat_options(*, text_mode: str = "auto", color_mode: str = "value") -> Json:
    return {
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "percentChangeColorMode": "standard",
        "reduceOptions": reduce_options(),
        "showPercentChange": False,
        "textMode": text_mode,
        "wideLayout": True,
    }


def legend(*, placement: str = "bottom", show: bool = True, table: bool = False) -> Json:
    return {
        "calcs": ["lastNotNull", "max"] if table else [],
        "displayMode": "table" if table else "list",
        "placement": placement,
        "showLegend": show,
    }


def timeseries_options(*, legend_table: bool = False) -> Json:
    return {
        "legend": legend(table=legend_table),
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def timeseries_custom(
    *, bars: bool = False, stacked: bool = False, threshold_lines: bool = False
) -> Json:
    return {
        "axisBorderShow": False,
        "axisCenteredZero": False,
        "axisColorMode": "text",
        "axisLabel": "",
        "axisPlacement": "auto",
        "barAlignment": -1 if bars else 0,
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 70 if bars else 10,
        "gradientMode": "none",
        "hideFrom": {"legend": False, "tooltip": False, "viz": False},
        "insertNulls": False,
        "lineInterpolation": "linear",
        "lineWidth": 1,
        "pointSize": 4,
        "scaleDistribution": {"type": "linear"},
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "dashed" if threshold_lines else "off"},
    }


def waiting_over_time(description: str) -> Panel:
    """Unanswered items stacked by SLA state, in the states' own colours (two dashboards)."""
    return Panel(
        "timeseries",
        "Waiting over time",
        description,
        [target(f"sum by (state) (webcare_open_items{{{BRAND_SOURCE}}})", "{{state}}")],
        timeseries_options(),
        unit="short",
        decimals=0,
        custom=timeseries_custom(stacked=True),
        color="palette-classic",
        overrides=[
            override("breached", color={"fixedColor": "red", "mode": "fixed"}),
            override("warning", color={"fixedColor": "orange", "mode": "fixed"}),
            override("open", color={"fixedColor": "blue", "mode": "fixed"}),
        ],
    )


def table_custom() -> Json:
    return {
        "align": "auto",
        "cellOptions": {"type": "auto"},
        "filterable": False,
        "inspect": False,
    }


def value_text(mapping: dict[str, tuple[str, str]]) -> list[Json]:
    """Value mappings: raw value -> (text, colour)."""
    return [
        {
            "options": {
                value: {"color": color, "index": n, "text": text}
                for n, (value, (text, color)) in enumerate(mapping.items())
            },
            "type": "value",
        }
    ]


def override(name: str, **properties: Any) -> Json:
    """Field override by display name (e.g. a table column)."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": key, "value": value} for key, value in properties.items()],
    }


@dataclass
class Panel:
    """One panel; `Board.add` gives it an id and a position."""

    type: str
    title: str
    description: str
    targets: list[Json] = field(default_factory=list)
    options: Json = field(default_factory=dict)
    unit: str | None = None
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    steps: Json = field(default_factory=lambda: GREEN_ONLY)
    color: str = "thresholds"
    custom: Json | None = None
    mappings: list[Json] = field(default_factory=list)
    overrides: list[Json] = field(default_factory=list)
    transformations: list[Json] = field(default_factory=list)
    max_data_points: int | None = None
    no_value: str | None = None

    def to_json(self, panel_id: int, grid: Json) -> Json:
        defaults: Json = {
            "color": {"mode": self.color},
            "mappings": self.mappings,
            "thresholds": self.steps,
        }
        if self.custom is not None:
            defaults["custom"] = self.custom
        for key, value in (
            ("unit", self.unit),
            ("decimals", self.decimals),
            ("min", self.min),
            ("max", self.max),
            ("noValue", self.no_value),
        ):
            if value is not None:
                defaults[key] = value
        panel: Json = {
            "datasource": DATASOURCE,
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "gridPos": grid,
            "id": panel_id,
            "options": self.options,
            "pluginVersion": PLUGIN_VERSION,
            "targets": [{**t, "refId": chr(ord("A") + n)} for n, t in enumerate(self.targets)],
            "title": self.title,
            "type": self.type,
        }
        if self.transformations:
            panel["transformations"] = self.transformations
        if self.max_data_points is not None:
            panel["maxDataPoints"] = self.max_data_points
        if self.type == "text":
            del panel["datasource"], panel["targets"], panel["fieldConfig"]
        return panel


class Board:
    """Lays panels out left to right in rows of 24 grid units."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._row_height = 0
        self._id = 0

    def _next_id(self) -> int:
        self._id += 1
        return self._id

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
                "id": self._next_id(),
                "panels": [],
                "title": title,
                "type": "row",
            }
        )
        self._y += 1

    def add(self, panel: Panel, w: int, h: int) -> None:
        if self._x + w > 24:
            self._newline()
        grid = {"h": h, "w": w, "x": self._x, "y": self._y}
        self.panels.append(panel.to_json(self._next_id(), grid))
        self._x += w
        self._row_height = max(self._row_height, h)

    def _newline(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0


# --- template variables --------------------------------------------------------------------------


def datasource_variable() -> Json:
    return {
        "current": {"text": "Prometheus", "value": DEFAULT_DATASOURCE_UID},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(name: str, label: str, query: str, *, include_all: bool = True) -> Json:
    """A label_values() variable; multi-select with an "All" that matches everything."""
    variable: Json = {
        "current": {"text": ["All"], "value": ["$__all"]}
        if include_all
        else {"text": "webcare-monitor", "value": "webcare-monitor"},
        "datasource": DATASOURCE,
        "hide": 0,
        "includeAll": include_all,
        "label": label,
        "multi": include_all,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    if include_all:
        variable["allValue"] = ".*"
    return variable


BRAND_VARIABLE = query_variable("brand", "Brand", "label_values(webcare_source_up, brand)")
SOURCE_VARIABLE = query_variable(
    "source", "Source", 'label_values(webcare_source_up{brand=~"$brand"}, source)'
)
RECEIVER_VARIABLE = query_variable(
    "receiver", "Alert receiver", "label_values(webcare_alert_outbox_pending, receiver)"
)
JOB_VARIABLE = query_variable(
    "job", "Prometheus job", "label_values(webcare_build_info, job)", include_all=False
)


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    board: Board,
    variables: list[Json],
    time_from: str,
    refresh: str,
) -> Json:
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": ["webcare"],
                "targetBlank": False,
                "title": "webcare dashboards",
                "tooltip": "",
                "type": "dashboards",
            }
        ],
        "panels": board.panels,
        "refresh": refresh,
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["webcare"],
        "templating": {"list": [datasource_variable(), *variables]},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
    }


# --- Brand overview -------------------------------------------------------------------------------


def compliance_stat(window: str, title: str) -> Panel:
    return Panel(
        "stat",
        title,
        f"Share of judged items answered within target, items created in the last {window}"
        " (in time / (in time + late + breached and still waiting)), per source and period."
        " Computed from the store once a minute, so it covers the backfilled history too and"
        " matches `webcare-monitor report` for the same window. No value while nothing in the"
        " window has been judged yet.",
        [
            target(
                f'webcare_sla_compliance_ratio{{{BRAND_SOURCE}, window="{window}"}}',
                "{{source}} · {{period}}",
                instant=True,
            )
        ],
        stat_options(text_mode="value_and_name"),
        unit="percentunit",
        decimals=1,
        min=0,
        max=1,
        steps=COMPLIANCE_STEPS,
    )


def response_quantile(q: float, metric: str, window: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (le, period) "
        f"(increase({metric}_bucket{{{BRAND_SOURCE}}}[{window}])))"
    )


def rolling_quantile(q: float, record: str) -> str:
    return f"histogram_quantile({q}, sum by (le, period) ({record}{{{BRAND_SOURCE}}}))"


def brand_overview() -> Json:
    b = Board()
    b.row("SLA compliance (from the store, like the report)")
    b.add(compliance_stat("1d", "Compliance, last 24 hours"), 8, 5)
    b.add(compliance_stat("7d", "Compliance, last 7 days"), 8, 5)
    b.add(compliance_stat("30d", "Compliance, last 30 days"), 8, 5)

    b.row("Response times: office hours vs after hours")
    b.add(
        Panel(
            "stat",
            "First response time in the range (wall clock)",
            "Median and 90th percentile of the time from a consumer item to the brand's first"
            " reply, over the replies stored in the selected range, office hours vs after"
            " hours. Estimated from histogram buckets (every configured target is a bucket"
            " edge); the report gives exact nearest-rank figures.",
            [
                target(
                    response_quantile(0.5, "webcare_first_response_seconds", "$__range"),
                    "median · {{period}}",
                    instant=True,
                ),
                target(
                    response_quantile(0.9, "webcare_first_response_seconds", "$__range"),
                    "p90 · {{period}}",
                    instant=True,
                ),
            ],
            stat_options(text_mode="value_and_name"),
            unit="s",
            decimals=0,
            steps=WAIT_STEPS,
        ),
        10,
        8,
    )
    b.add(
        Panel(
            "timeseries",
            "First response time, rolling 24 hours",
            "Median and p90 over the previous 24 hours at each point, office vs after hours:"
            " wall clock (what the consumer waited) and SLA time (what the target is judged"
            " on: only the time inside the coverage calendar). From the recording rules"
            " webcare:first_response_*seconds_bucket:increase1d.",
            [
                target(
                    rolling_quantile(0.5, "webcare:first_response_seconds_bucket:increase1d"),
                    "median · {{period}}",
                ),
                target(
                    rolling_quantile(0.9, "webcare:first_response_seconds_bucket:increase1d"),
                    "p90 · {{period}}",
                ),
                target(
                    rolling_quantile(0.9, "webcare:first_response_sla_seconds_bucket:increase1d"),
                    "p90 SLA time · {{period}}",
                ),
            ],
            timeseries_options(),
            unit="s",
            custom=timeseries_custom(),
            color="palette-classic",
        ),
        14,
        8,
    )

    b.row("Traffic: when consumers post")
    b.add(
        Panel(
            "stat",
            "After-hours share",
            "Share of the consumer items stored in the selected range that arrived outside"
            " office hours (the source's office calendar).",
            [
                target(
                    f'sum(increase(webcare_items_total{{{BRAND_SOURCE}, period="after_hours"}}'
                    f"[$__range])) / sum(increase(webcare_items_total{{{BRAND_SOURCE}}}"
                    "[$__range]))",
                    "after hours",
                    instant=True,
                )
            ],
            stat_options(),
            unit="percentunit",
            decimals=0,
            min=0,
            max=1,
            steps=thresholds(("blue", None)),
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
                    f"sum by (period) (increase(webcare_items_total{{{BRAND_SOURCE}}}[$__range]))",
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
        Panel(
            "timeseries",
            "Consumer items per hour (over 7 days: the week hour by hour)",
            "Arrival rate of consumer items, stacked office hours / after hours. Over the"
            " default 7-day range each bar is one hour of the week, so evenings, nights and"
            " the weekend stand out. Counts items as this service stores them: the one-time"
            " backfill of history shows up as one spike at the first start.",
            [
                target(
                    f"sum by (period) (rate(webcare_items_total{{{BRAND_SOURCE}}}"
                    "[$__rate_interval])) * 3600",
                    "{{period}}",
                )
            ],
            timeseries_options(),
            unit="short",
            decimals=1,
            custom=timeseries_custom(bars=True, stacked=True),
            color="palette-classic",
            max_data_points=168,
        ),
        14,
        8,
    )

    b.row("Waiting now, and breaches")
    b.add(
        Panel(
            "stat",
            "Waiting for a first reply",
            "Consumer items nobody has answered yet (open, past the warning point, or breached).",
            [target(f"sum(webcare_open_items{{{BRAND_SOURCE}}})", "waiting", instant=True)],
            stat_options(),
            unit="short",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 5), ("red", 20)),
        ),
        4,
        5,
    )
    b.add(
        Panel(
            "stat",
            "Breached, still waiting",
            "Unanswered items past their due time.",
            [
                target(
                    f'sum(webcare_open_items{{{BRAND_SOURCE}, state="breached"}})',
                    "breached",
                    instant=True,
                )
            ],
            stat_options(color_mode="background"),
            unit="short",
            decimals=0,
            steps=ANY_IS_BAD,
        ),
        4,
        5,
    )
    b.add(
        Panel(
            "stat",
            "Oldest waiting",
            "Age of the oldest unanswered consumer item (0 when nothing waits).",
            [
                target(
                    f"max(webcare_oldest_open_item_age_seconds{{{BRAND_SOURCE}}})",
                    "oldest",
                    instant=True,
                )
            ],
            stat_options(),
            unit="s",
            decimals=0,
            steps=WAIT_STEPS,
        ),
        4,
        5,
    )
    b.add(
        Panel(
            "stat",
            "Breaches in the range",
            "Items that were still unanswered at their due time (after one re-fetch of the"
            " thread), in the selected range.",
            [
                target(
                    f"sum by (period) (increase(webcare_sla_breaches_total{{{BRAND_SOURCE}}}"
                    "[$__range]))",
                    "{{period}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="short",
            decimals=0,
            steps=ANY_IS_BAD,
        ),
        12,
        5,
    )
    b.add(
        Panel(
            "timeseries",
            "Breaches over time (per hour)",
            "How many items per hour reached their due time unanswered, per source and period.",
            [
                target(
                    f"sum by (source, period) (rate(webcare_sla_breaches_total{{{BRAND_SOURCE}}}"
                    "[$__rate_interval])) * 3600",
                    "{{source}} · {{period}}",
                )
            ],
            timeseries_options(),
            unit="short",
            decimals=1,
            custom=timeseries_custom(bars=True, stacked=True),
            color="palette-classic",
        ),
        12,
        8,
    )
    b.add(
        waiting_over_time("Unanswered consumer items by SLA state."),
        12,
        8,
    )

    b.row("Per source and per moderator")
    per_source = [
        ("Items", f"sum by (source) (increase(webcare_items_total{{{BRAND_SOURCE}}}[$__range]))"),
        (
            "Compliance 7d office",
            f'max by (source) (webcare_sla_compliance_ratio{{{BRAND_SOURCE}, window="7d",'
            ' period="office_hours"})',
        ),
        (
            "Compliance 7d after hours",
            f'max by (source) (webcare_sla_compliance_ratio{{{BRAND_SOURCE}, window="7d",'
            ' period="after_hours"})',
        ),
        (
            "Median reply",
            "histogram_quantile(0.5, sum by (le, source) (increase("
            f"webcare_first_response_seconds_bucket{{{BRAND_SOURCE}}}[$__range])))",
        ),
        (
            "Breaches",
            f"sum by (source) (increase(webcare_sla_breaches_total{{{BRAND_SOURCE}}}[$__range]))",
        ),
        ("Waiting now", f"sum by (source) (webcare_open_items{{{BRAND_SOURCE}}})"),
        (
            "Oldest waiting",
            f"max by (source) (webcare_oldest_open_item_age_seconds{{{BRAND_SOURCE}}})",
        ),
        ("Up", f"max by (source) (webcare_source_up{{{BRAND_SOURCE}}})"),
    ]
    b.add(
        Panel(
            "table",
            "Per source",
            "One row per source: items stored and replies in the selected range, rolling"
            " 7-day compliance from the store, what waits now and whether the source is polled"
            " successfully.",
            [target(expr, name, instant=True, table=True) for name, expr in per_source],
            {
                "cellHeight": "sm",
                "frameIndex": 0,
                "showHeader": True,
                "sortBy": [{"desc": False, "displayName": "Compliance 7d after hours"}],
            },
            custom=table_custom(),
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "indexByName": {},
                        "renameByName": {
                            f"Value #{chr(ord('A') + n)}": name
                            for n, (name, _) in enumerate(per_source)
                        },
                    },
                },
            ],
            overrides=[
                *(
                    override(
                        name,
                        unit="percentunit",
                        decimals=1,
                        thresholds=COMPLIANCE_STEPS,
                        **{"custom.cellOptions": {"type": "color-text"}},
                    )
                    for name in ("Compliance 7d office", "Compliance 7d after hours")
                ),
                override("Median reply", unit="s", decimals=0),
                override("Oldest waiting", unit="s", decimals=0),
                override(
                    "Up",
                    mappings=value_text({"1": ("up", "green"), "0": ("down", "red")}),
                    **{"custom.cellOptions": {"type": "color-text"}},
                ),
            ],
        ),
        24,
        8,
    )
    b.add(
        Panel(
            "table",
            "Per moderator",
            "First replies per responder (as the platform names them: the page name on"
            " Facebook, the username on forums) in the selected range, and their share of"
            " all first replies.",
            [
                target(
                    "sum by (source, moderator) (increase("
                    f"webcare_moderator_responses_total{{{BRAND_SOURCE}}}[$__range]))",
                    "replies",
                    instant=True,
                    table=True,
                ),
                target(
                    "sum by (source, moderator) (increase("
                    f"webcare_moderator_responses_total{{{BRAND_SOURCE}}}[$__range]))"
                    " / scalar(sum(increase("
                    f"webcare_moderator_responses_total{{{BRAND_SOURCE}}}[$__range])))",
                    "share",
                    instant=True,
                    table=True,
                ),
            ],
            {
                "cellHeight": "sm",
                "frameIndex": 0,
                "showHeader": True,
                "sortBy": [{"desc": True, "displayName": "First replies"}],
            },
            custom=table_custom(),
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "indexByName": {},
                        "renameByName": {
                            "moderator": "Moderator",
                            "source": "Source",
                            "Value #A": "First replies",
                            "Value #B": "Share",
                        },
                    },
                },
            ],
            overrides=[
                override("First replies", decimals=0),
                override("Share", unit="percentunit", decimals=1),
            ],
        ),
        24,
        8,
    )
    return dashboard(
        uid="webcare-brand-overview",
        title="Webcare · Brand overview",
        description="Is the promise kept? SLA compliance, response times office vs after"
        " hours, when consumers post, what waits, per source and per moderator.",
        board=b,
        variables=[BRAND_VARIABLE, SOURCE_VARIABLE],
        time_from="now-7d",
        refresh="1m",
    )


# --- On duty -------------------------------------------------------------------------------------


def open_items_stat(state: str, title: str, description: str, steps: Json) -> Panel:
    return Panel(
        "stat",
        title,
        description,
        [
            target(
                f'sum(webcare_open_items{{{BRAND_SOURCE}, state="{state}"}})',
                state,
                instant=True,
            )
        ],
        stat_options(color_mode="background"),
        unit="short",
        decimals=0,
        steps=steps,
    )


def on_duty() -> Json:
    b = Board()
    b.row("Right now")
    b.add(
        open_items_stat(
            "open",
            "Open",
            "Unanswered items still well within their target.",
            thresholds(("blue", None)),
        ),
        4,
        5,
    )
    b.add(
        open_items_stat(
            "warning",
            "Due soon",
            "Unanswered items past their warning point (warn_at × target): answer these"
            " first. The queue page lists them, most urgent first.",
            thresholds(("green", None), ("orange", 1)),
        ),
        4,
        5,
    )
    b.add(
        open_items_stat(
            "breached",
            "Breached",
            "Unanswered items past their due time.",
            ANY_IS_BAD,
        ),
        4,
        5,
    )
    b.add(
        Panel(
            "stat",
            "Oldest waiting",
            "Age of the oldest unanswered item per source.",
            [
                target(
                    f"max by (source) (webcare_oldest_open_item_age_seconds{{{BRAND_SOURCE}}})",
                    "{{source}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="s",
            decimals=0,
            steps=WAIT_STEPS,
        ),
        6,
        5,
    )
    b.add(
        Panel(
            "stat",
            "Who is on duty",
            "Whether the roster has somebody on duty for each source now (a gap goes to the lead).",
            [
                target(
                    f"max by (source) (webcare_roster_gap{{{BRAND_SOURCE}}})",
                    "{{source}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name", color_mode="background"),
            mappings=value_text({"0": ("covered", "green"), "1": ("NOBODY ON DUTY", "red")}),
            steps=ANY_IS_BAD,
        ),
        6,
        5,
    )
    b.add(
        Panel(
            "bargauge",
            "Waiting by source",
            "Unanswered items per source and SLA state.",
            [
                target(
                    f"sum by (source, state) (webcare_open_items{{{BRAND_SOURCE}}})",
                    "{{source}} · {{state}}",
                    instant=True,
                )
            ],
            {
                "displayMode": "gradient",
                "legend": legend(show=False),
                "maxVizHeight": 300,
                "minVizHeight": 16,
                "minVizWidth": 8,
                "namePlacement": "auto",
                "orientation": "horizontal",
                "reduceOptions": reduce_options(),
                "showUnfilled": True,
                "sizing": "auto",
                "valueMode": "color",
            },
            unit="short",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 1), ("red", 5)),
        ),
        10,
        8,
    )
    b.add(
        waiting_over_time("Unanswered items by SLA state."),
        14,
        8,
    )

    b.row("Alerts to the team")
    b.add(
        Panel(
            "stat",
            "Alerts delivered in the range",
            "Warnings, breaches and resolved messages accepted by the receivers.",
            [
                target(
                    "sum by (kind) (increase(webcare_alerts_total"
                    f'{{{RECEIVER}, outcome="delivered"}}[$__range]))',
                    "{{kind}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="short",
            decimals=0,
            steps=thresholds(("blue", None)),
        ),
        8,
        5,
    )
    b.add(
        Panel(
            "stat",
            "Waiting in the outbox",
            "Notifications not yet accepted by their receiver (retried with backoff; more than"
            " a few for minutes means the receiver is down).",
            [
                target(
                    f"sum by (receiver) (webcare_alert_outbox_pending{{{RECEIVER}}})",
                    "{{receiver}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="short",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 1), ("red", 10)),
        ),
        8,
        5,
    )
    b.add(
        Panel(
            "stat",
            "Alert delivery time (p90, in the range)",
            "From the warning/due instant (or the answer) to the receiver's acceptance.",
            [
                target(
                    "histogram_quantile(0.9, sum by (le, receiver) (increase("
                    f"webcare_alert_delivery_seconds_bucket{{{RECEIVER}}}[$__range])))",
                    "{{receiver}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="s",
            decimals=2,
            # NaN: nothing was delivered in the range, so there is no delivery time.
            mappings=[
                {
                    "options": {"match": "nan", "result": {"index": 0, "text": "none delivered"}},
                    "type": "special",
                }
            ],
            steps=thresholds(("green", None), ("orange", 5), ("red", 60)),
        ),
        8,
        5,
    )
    b.add(
        Panel(
            "table",
            "Delivery state in the range",
            "Notifications per receiver, kind and outcome: delivered, retried (a failed"
            " attempt that will be retried) or dead (given up after max_age).",
            [
                target(
                    "sum by (receiver, kind, outcome) (increase("
                    f"webcare_alerts_total{{{RECEIVER}}}[$__range]))",
                    "",
                    instant=True,
                    table=True,
                )
            ],
            {
                "cellHeight": "sm",
                "frameIndex": 0,
                "showHeader": True,
                "sortBy": [{"desc": True, "displayName": "Notifications"}],
            },
            custom=table_custom(),
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "indexByName": {},
                        "renameByName": {
                            "receiver": "Receiver",
                            "kind": "Kind",
                            "outcome": "Outcome",
                            "Value": "Notifications",
                        },
                    },
                }
            ],
            overrides=[
                override("Notifications", decimals=0),
                override(
                    "Outcome",
                    mappings=value_text(
                        {
                            "delivered": ("delivered", "green"),
                            "retried": ("retried", "orange"),
                            "dead": ("dead", "red"),
                        }
                    ),
                    **{"custom.cellOptions": {"type": "color-text"}},
                ),
            ],
        ),
        12,
        8,
    )
    b.add(
        Panel(
            "timeseries",
            "Notifications per minute",
            "Delivery attempts per receiver and outcome.",
            [
                target(
                    "sum by (receiver, outcome) (rate("
                    f"webcare_alerts_total{{{RECEIVER}}}[$__rate_interval])) * 60",
                    "{{receiver}} · {{outcome}}",
                )
            ],
            timeseries_options(),
            unit="short",
            decimals=1,
            custom=timeseries_custom(bars=True, stacked=True),
            color="palette-classic",
        ),
        12,
        8,
    )

    b.row("How fast posts are seen")
    b.add(
        Panel(
            "stat",
            "Detection lag (p90, in the range)",
            "From a post's creation on the platform to this service storing it (poll interval"
            " plus API delay; webhooks make it seconds). Backfilled history is left out.",
            [
                target(
                    "histogram_quantile(0.9, sum by (le, source) (increase("
                    f"webcare_detection_lag_seconds_bucket{{{BRAND_SOURCE}}}[$__range])))",
                    "{{source}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="s",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 300), ("red", 900)),
        ),
        8,
        8,
    )
    b.add(
        Panel(
            "timeseries",
            "Detection lag over time",
            "Median and p90 detection lag per source.",
            [
                target(
                    "histogram_quantile(0.5, sum by (le, source) (rate("
                    f"webcare_detection_lag_seconds_bucket{{{BRAND_SOURCE}}}"
                    "[$__rate_interval])))",
                    "median · {{source}}",
                ),
                target(
                    "histogram_quantile(0.9, sum by (le, source) (rate("
                    f"webcare_detection_lag_seconds_bucket{{{BRAND_SOURCE}}}"
                    "[$__rate_interval])))",
                    "p90 · {{source}}",
                ),
            ],
            timeseries_options(),
            unit="s",
            custom=timeseries_custom(),
            color="palette-classic",
        ),
        16,
        8,
    )
    b.add(
        Panel(
            "text",
            "How to read this",
            "",
            options={
                "content": (
                    "**Open** items are within their target; **due soon** ones are past the"
                    " warning point (warn_at × target) and should be answered first;"
                    " **breached** ones are past their due time. The on-duty student gets a"
                    " webhook for each warning and breach and a *resolved* message when the"
                    " item is answered.\n\n"
                    "The queue page of webcare-monitor (`/` on its HTTP port, with an API"
                    " token) lists every waiting post with its excerpt and permalink, most"
                    " urgent first."
                ),
                "mode": "markdown",
            },
        ),
        24,
        3,
    )
    return dashboard(
        uid="webcare-on-duty",
        title="Webcare · On duty",
        description="For the student on duty and the team lead: what waits now, what is due"
        " soon, whether the alerts reach the team, and how fast new posts are seen.",
        board=b,
        variables=[BRAND_VARIABLE, SOURCE_VARIABLE, RECEIVER_VARIABLE],
        time_from="now-6h",
        refresh="30s",
    )


# --- Operations ----------------------------------------------------------------------------------


def burn_rate(window: str) -> Json:
    return target(
        f"webcare:sla_error:ratio_rate{window}{{{BRAND_SOURCE}}} / {ERROR_BUDGET}",
        f"{window} · {{{{source}}}}",
    )


def operations() -> Json:
    b = Board()
    b.row("Sources and polling")
    b.add(
        Panel(
            "stat",
            "Sources down",
            "Sources whose last poll failed (webcare_source_up = 0).",
            [
                target(
                    f"count(webcare_source_up{{{BRAND_SOURCE}}} == 0) or vector(0)",
                    "down",
                    instant=True,
                )
            ],
            stat_options(color_mode="background"),
            unit="short",
            decimals=0,
            steps=ANY_IS_BAD,
        ),
        4,
        6,
    )
    b.add(
        Panel(
            "state-timeline",
            "Source up / down",
            "Whether each source's last poll succeeded, over time.",
            [target(f"max by (source) (webcare_source_up{{{BRAND_SOURCE}}})", "{{source}}")],
            {
                "alignValue": "left",
                "legend": legend(show=False),
                "mergeValues": True,
                "rowHeight": 0.9,
                "showValue": "never",
                "tooltip": {"mode": "single", "sort": "none"},
            },
            custom={
                "fillOpacity": 80,
                "hideFrom": {"legend": False, "tooltip": False, "viz": False},
                "lineWidth": 0,
            },
            mappings=value_text({"1": ("up", "green"), "0": ("down", "red")}),
            steps=thresholds(("red", None), ("green", 1)),
        ),
        12,
        6,
    )
    b.add(
        Panel(
            "stat",
            "Since the last successful poll",
            "Per source; compare with its poll_interval (the poller slows down under heavy API"
            " usage).",
            [
                target(
                    "time() - max by (source) ("
                    f"webcare_last_successful_poll_timestamp_seconds{{{SOURCE}}} > 0)",
                    "{{source}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="s",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 600), ("red", 1800)),
        ),
        8,
        6,
    )
    b.add(
        Panel(
            "timeseries",
            "Poll duration",
            "Median and p90 duration of one poll per source.",
            [
                target(
                    "histogram_quantile(0.5, sum by (le, source) (rate("
                    f"webcare_poll_duration_seconds_bucket{{{SOURCE}}}[$__rate_interval])))",
                    "median · {{source}}",
                ),
                target(
                    "histogram_quantile(0.9, sum by (le, source) (rate("
                    f"webcare_poll_duration_seconds_bucket{{{SOURCE}}}[$__rate_interval])))",
                    "p90 · {{source}}",
                ),
            ],
            timeseries_options(),
            unit="s",
            custom=timeseries_custom(),
            color="palette-classic",
        ),
        12,
        8,
    )
    b.add(
        Panel(
            "timeseries",
            "Poll errors by reason (per minute)",
            "Failed polls: auth (token; see the log), rate_limited, transient (network, 5xx),"
            " fatal, store, error.",
            [
                target(
                    "sum by (source, reason) (rate("
                    f"webcare_poll_errors_total{{{SOURCE}}}[$__rate_interval])) * 60",
                    "{{source}} · {{reason}}",
                )
            ],
            timeseries_options(),
            unit="short",
            decimals=2,
            custom=timeseries_custom(bars=True, stacked=True),
            color="palette-classic",
        ),
        12,
        8,
    )
    b.add(
        Panel(
            "timeseries",
            "API usage",
            "Highest usage the platform reports (Graph API usage headers). The poller slows"
            " down above 50%, 4x at 75% and 10x at 90%.",
            [
                target(
                    f"max by (source) (webcare_api_usage_ratio{{{SOURCE}}})",
                    "{{source}}",
                )
            ],
            timeseries_options(),
            unit="percentunit",
            min=0,
            max=1,
            custom=timeseries_custom(threshold_lines=True),
            color="palette-classic",
            steps=thresholds(("green", None), ("yellow", 0.5), ("orange", 0.75), ("red", 0.9)),
        ),
        12,
        8,
    )
    b.add(
        Panel(
            "stat",
            "Access tokens expire in",
            "Time left on each Facebook source's token (kind: access or data_access), from"
            " /debug_token every 6 hours; a warning is logged 7 days ahead. A page whose"
            " token never expires shows \u201cnever\u201d.",
            [
                target(
                    "(min by (source, kind) "
                    f"(webcare_token_expiry_timestamp_seconds{{{SOURCE}}}) - time())"
                    " or on (source) label_replace(group by (source) (webcare_source_up{"
                    f'{BRAND_SOURCE}, platform="facebook_page"}}) * +Inf, "kind", "access",'
                    ' "", "")',
                    "{{source}} · {{kind}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="s",
            decimals=0,
            mappings=value_text({"Infinity": ("never", "green")}),
            steps=thresholds(("red", None), ("orange", 86400), ("green", 7 * 86400)),
        ),
        6,
        8,
    )
    b.add(
        Panel(
            "timeseries",
            "Facebook webhook deliveries (per minute)",
            "Deliveries to /webhooks/facebook by outcome; anything but accepted was refused"
            " (403) and stored nothing.",
            [
                target(
                    "sum by (outcome) (rate(webcare_webhook_deliveries_total"
                    "[$__rate_interval])) * 60",
                    "{{outcome}}",
                )
            ],
            timeseries_options(),
            unit="short",
            decimals=1,
            custom=timeseries_custom(),
            color="palette-classic",
        ),
        6,
        8,
    )

    b.row("SLO: 95% of items answered within target (deploy/prometheus rules)")
    b.add(
        Panel(
            "timeseries",
            "Error budget burn rate",
            "How fast each source spends its error budget (1 = exactly the budget over 30"
            " days). Pages at 14.4 (1h) or 6 (6h), tickets at 3 (1d) or 1 (3d), each confirmed"
            " by a short window and a minimum number of judged items.",
            [burn_rate("1h"), burn_rate("6h"), burn_rate("1d"), burn_rate("3d")],
            timeseries_options(legend_table=True),
            unit="short",
            decimals=1,
            min=0,
            custom=timeseries_custom(threshold_lines=True),
            color="palette-classic",
            steps=thresholds(("green", None), ("yellow", 1), ("orange", 6), ("red", 14.4)),
        ),
        14,
        8,
    )
    b.add(
        Panel(
            "stat",
            "Error budget left (30 days)",
            "1 − (breached / judged over 30 days) / 5%. Below zero the SLO is missed.",
            [
                target(
                    f"1 - webcare:sla_error:ratio_rate30d{{{BRAND_SOURCE}}} / {ERROR_BUDGET}",
                    "{{source}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="percentunit",
            decimals=0,
            steps=thresholds(("red", None), ("orange", 0), ("green", 0.25)),
        ),
        5,
        8,
    )
    b.add(
        Panel(
            "stat",
            "Items judged (30 days)",
            "Items answered in time plus items breached over 30 days: the SLO's volume.",
            [
                target(
                    f"webcare:sla_judged:increase30d{{{BRAND_SOURCE}}}",
                    "{{source}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="short",
            decimals=0,
            steps=thresholds(("blue", None)),
        ),
        5,
        8,
    )

    b.row("Alert delivery and the service")
    b.add(
        Panel(
            "timeseries",
            "Alert outbox backlog",
            "Notifications waiting per receiver, retries included (a receiver that is down keeps"
            " its backlog here until it accepts them or they reach max_age).",
            [
                target(
                    f"sum by (receiver) (webcare_alert_outbox_pending{{{RECEIVER}}})",
                    "{{receiver}}",
                )
            ],
            timeseries_options(),
            unit="short",
            decimals=0,
            custom=timeseries_custom(),
            color="palette-classic",
        ),
        6,
        6,
    )
    b.add(
        Panel(
            "stat",
            "Oldest waiting alert",
            "How long the oldest notification not yet accepted has waited since its event, per"
            " receiver (0: none waits); the WebcareAlertOutboxBacklog alert pages above 15"
            " minutes.",
            [
                target(
                    f"max by (receiver) (webcare_alert_outbox_oldest_age_seconds{{{RECEIVER}}})",
                    "{{receiver}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="s",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 300), ("red", 900)),
        ),
        4,
        6,
    )
    b.add(
        Panel(
            "stat",
            "Dead-lettered in the range",
            "Notifications given up after max_age: those students never got them.",
            [
                target(
                    "sum by (receiver) (increase(webcare_alerts_total"
                    f'{{{RECEIVER}, outcome="dead"}}[$__range]))',
                    "{{receiver}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="value_and_name"),
            unit="short",
            decimals=0,
            steps=ANY_IS_BAD,
        ),
        5,
        6,
    )
    b.add(
        Panel(
            "stat",
            "Scrape target",
            "Whether Prometheus reaches webcare-monitor's /metrics (job $job).",
            [target('up{job=~"$job"}', "{{instance}}", instant=True)],
            stat_options(text_mode="value_and_name", color_mode="background"),
            mappings=value_text({"1": ("up", "green"), "0": ("DOWN", "red")}),
            steps=thresholds(("red", None), ("green", 1)),
        ),
        5,
        6,
    )
    b.add(
        Panel(
            "stat",
            "Version",
            "webcare_build_info per instance.",
            [
                target(
                    'webcare_build_info{job=~"$job"}',
                    "{{version}} on {{instance}}",
                    instant=True,
                )
            ],
            stat_options(text_mode="name"),
            unit="none",
            steps=thresholds(("blue", None)),
        ),
        4,
        6,
    )
    return dashboard(
        uid="webcare-operations",
        title="Webcare · Operations",
        description="For the operator: sources and polling, API quota and tokens, the SLO"
        " burn rates behind the alerts, alert delivery, version.",
        board=b,
        variables=[JOB_VARIABLE, BRAND_VARIABLE, SOURCE_VARIABLE, RECEIVER_VARIABLE],
        time_from="now-24h",
        refresh="1m",
    )


DASHBOARDS = {
    "webcare-brand-overview.json": brand_overview,
    "webcare-on-duty.json": on_duty,
    "webcare-operations.json": operations,
}


def render(build: Any) -> str:
    """The JSON text of one dashboard as committed."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write every dashboard next to this script; `--check` only compares."""
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run python dashboards/build.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
