"""Grafana's classic dashboard model: queries, field options, panels, layout, variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The classic dashboard model of Grafana 13 (@grafana/schema 13.2.3: defaultDashboard).
SCHEMA_VERSION = 42
# The panel plugins' version in that release (panelcfg `pluginVersion`).
PLUGIN_VERSION = "13.2.2"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Provisioned by dashboards/provisioning/datasources/webcare-prometheus.yaml.
DEFAULT_DATASOURCE_UID = "webcare-prometheus"

Json = dict[str, Any]


def ref_id(n: int) -> str:
    """The refId of a panel's n-th query (A, B, ...); tables name merged columns after it."""
    return chr(ord("A") + n)


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


# --- options of the panel plugins ---------------------------------------------------------------


def reduce_options(calcs: str = "lastNotNull") -> Json:
    """Show a series' last value."""
    return {"calcs": [calcs], "fields": "", "values": False}


def stat_options(*, text_mode: str = "auto", color_mode: str = "value") -> Json:
    """Options of a stat panel: the value without a sparkline."""
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
    """A legend; as a table it also shows each series' last and highest value."""
    return {
        "calcs": ["lastNotNull", "max"] if table else [],
        "displayMode": "table" if table else "list",
        "placement": placement,
        "showLegend": show,
    }


def timeseries_options(*, legend_table: bool = False) -> Json:
    """Options of a time series panel: a tooltip with every series, largest first."""
    return {
        "legend": legend(table=legend_table),
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def timeseries_custom(
    *, bars: bool = False, stacked: bool = False, threshold_lines: bool = False
) -> Json:
    """Field options of a time series panel: thin lines, or bars for counts per interval."""
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


def table_custom() -> Json:
    """Field options of a table panel."""
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


# Override property that colours a table cell's text by its thresholds or value mapping.
COLOR_TEXT = {"custom.cellOptions": {"type": "color-text"}}


# --- panels and their layout ---------------------------------------------------------------------


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
        """The panel as Grafana stores it."""
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
            "targets": [{**t, "refId": ref_id(n)} for n, t in enumerate(self.targets)],
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
        """Start a new (expanded) row under the panels so far."""
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
        """Place a panel w units wide and h high, on a new line when it does not fit."""
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


# --- template variables and the dashboard -------------------------------------------------------


def datasource_variable() -> Json:
    """The Prometheus data source, defaulting to the provisioned one."""
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


def query_variable(
    name: str, label: str, query: str, *, include_all: bool = True, all_value: str | None = ".*"
) -> Json:
    """A label_values() variable; multi-select with an "All" that matches everything
    (`all_value`), or, with all_value None, every value the variable's query lists."""
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
    if include_all and all_value is not None:
        variable["allValue"] = all_value
    return variable


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
    """A whole dashboard, linked to the other webcare dashboards by their shared tag."""
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
