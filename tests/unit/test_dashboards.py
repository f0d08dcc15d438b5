"""Issue 8, acceptance 3: the Grafana dashboards are valid against Grafana's published schema.

dashboards/schema/grafana-dashboard.schema.json is generated from npm @grafana/schema (the classic
dashboard model and every core panel plugin's options) and @grafana/prometheus (the query model)
by dashboards/schema/generate.sh; it is committed, so this test needs neither npm nor Grafana.
Every object in it is closed (additionalProperties: false), so a misspelt key fails: the last
tests prove that for keys at each level. The PromQL is linted offline with promtool here and
run against a real Prometheus in tests/integration/test_dashboards_prometheus.py.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
SCHEMA_PATH = DASHBOARDS / "schema" / "grafana-dashboard.schema.json"
PROVISIONING = DASHBOARDS / "provisioning"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
# What a validator must understand to check this schema; anything else would be ignored silently.
_KNOWN_KEYWORDS = {
    "$ref",
    "additionalProperties",
    "anyOf",
    "const",
    "deprecated",
    "description",
    "enum",
    "items",
    "properties",
    "required",
    "type",
}
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "number": (int, float),
    "integer": (int,),
}

Json = dict[str, Any]


# --- a small JSON Schema (draft-07 subset) validator ---------------------------------------------


class Schema:
    """Validates instances against the roots of the generated Grafana schema."""

    def __init__(self, document: Json) -> None:
        self.document = document
        self.definitions: dict[str, Json] = document["definitions"]
        self.roots: dict[str, Json] = document["roots"]

    def errors(self, instance: Any, root: str) -> list[str]:
        """Every violation, each as 'path: message'."""
        found: list[str] = []
        self._check(instance, self.roots[root], "$", found)
        return found

    def _resolve(self, ref: str) -> Json:
        prefix = "#/definitions/"
        assert ref.startswith(prefix), ref
        return self.definitions[unquote(ref[len(prefix) :])]

    def _check(self, value: Any, schema: Json, path: str, found: list[str]) -> None:
        unknown = set(schema) - _KNOWN_KEYWORDS
        assert not unknown, f"validator does not know {unknown} (schema at {path})"
        if "$ref" in schema:
            self._check(value, self._resolve(schema["$ref"]), path, found)
        if "anyOf" in schema:
            branches = []
            for option in schema["anyOf"]:
                branch: list[str] = []
                self._check(value, option, path, branch)
                if not branch:
                    break
                branches.append(branch)
            else:
                closest = min(branches, key=len)
                found.append(f"{path}: matches none of anyOf; closest: {'; '.join(closest)}")
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            allowed = tuple(t for n in names for t in _TYPES[n])
            is_bool = isinstance(value, bool)
            if not isinstance(value, allowed) or (is_bool and bool not in allowed):
                found.append(f"{path}: {type(value).__name__} is not {'/'.join(names)}")
                return
        if "const" in schema and value != schema["const"]:
            found.append(f"{path}: {value!r} is not {schema['const']!r}")
        if "enum" in schema and value not in schema["enum"]:
            found.append(f"{path}: {value!r} is not one of {schema['enum']}")
        if isinstance(value, dict):
            self._check_object(value, schema, path, found)
        if isinstance(value, list) and "items" in schema:
            for n, item in enumerate(value):
                self._check(item, schema["items"], f"{path}[{n}]", found)

    def _check_object(self, value: Json, schema: Json, path: str, found: list[str]) -> None:
        properties: Json = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                found.append(f"{path}: required key {key!r} is missing")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                self._check(item, properties[key], f"{path}.{key}", found)
            elif extra is False:
                found.append(f"{path}: unknown key {key!r}")
            elif isinstance(extra, dict):
                self._check(item, extra, f"{path}.{key}", found)


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


# --- walking dashboards --------------------------------------------------------------------------


def load_dashboards() -> dict[str, Json]:
    """Every committed dashboard, by file name."""
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARD_FILES}


def panels(dashboard: Json) -> Iterator[Json]:
    """Every panel that is not a row, including panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_errors(schema: Schema, panel: Json) -> list[str]:
    """The checks a panel's free-form parts need: options, custom field config, targets."""
    kind = panel["type"].replace("-", "")
    errors = [f"options{e[1:]}" for e in schema.errors(panel.get("options", {}), f"Options_{kind}")]
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
    if f"FieldConfig_{kind}" in schema.roots:
        if custom is not None:
            errors += [
                f"fieldConfig.defaults.custom{e[1:]}"
                for e in schema.errors(custom, f"FieldConfig_{kind}")
            ]
    elif custom:
        errors.append(f"fieldConfig.defaults.custom: {panel['type']} has no custom options")
    for n, query in enumerate(panel.get("targets", [])):
        errors += [f"targets[{n}]{e[1:]}" for e in schema.errors(query, "PrometheusTarget")]
    return errors


def all_errors(schema: Schema, dashboard: Json) -> list[str]:
    errors = schema.errors(dashboard, "GrafanaDashboard")
    for panel in panels(dashboard):
        errors += [f"panel {panel.get('title')!r}: {e}" for e in panel_errors(schema, panel)]
    return errors


# --- the dashboards ------------------------------------------------------------------------------


def test_three_dashboards_are_committed() -> None:
    assert [p.name for p in DASHBOARD_FILES] == [
        "webcare-brand-overview.json",
        "webcare-on-duty.json",
        "webcare-operations.json",
    ]


def test_committed_json_is_what_build_py_builds() -> None:
    result = subprocess.run(
        [sys.executable, str(DASHBOARDS / "build.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", [p.name for p in DASHBOARD_FILES])
def test_dashboard_matches_grafana_schema(schema: Schema, name: str) -> None:
    dashboard = load_dashboards()[name]
    assert all_errors(schema, dashboard) == []


def test_every_panel_type_used_has_its_options_in_the_schema(schema: Schema) -> None:
    for dashboard in load_dashboards().values():
        for panel in panels(dashboard):
            assert f"Options_{panel['type'].replace('-', '')}" in schema.roots, panel["type"]


@pytest.mark.parametrize("name", [p.name for p in DASHBOARD_FILES])
def test_dashboard_conventions(name: str) -> None:
    """Datasource as a variable, brand/source variables, units, unique ids, no overlaps."""
    dashboard = load_dashboards()[name]
    assert dashboard["schemaVersion"] == 42  # Grafana 13 (@grafana/schema 13.2.3)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name_ in ("brand", "source"):
        assert variables[name_]["type"] == "query"
        assert variables[name_]["includeAll"] and variables[name_]["multi"]
        assert variables[name_]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']!r} overlaps another panel"
        cells |= area
    for panel in panels(dashboard):
        if panel["type"] == "text":
            continue
        assert panel.get("description"), f"{panel['title']!r} has no description"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for query in panel["targets"]:
            assert query["datasource"] == panel["datasource"]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("thresholds", {}).get("steps"), f"{panel['title']!r}: thresholds"
        if panel["type"] in ("stat", "timeseries", "bargauge"):
            has_unit = "unit" in defaults or defaults.get("mappings")
            assert has_unit, f"{panel['title']!r} has no unit"


# Metrics that carry brand and source labels: their selectors must honour both variables.
_BRAND_METRICS = re.compile(
    r"\b(webcare_(?:items_total|items_dismissed_total|first_response_seconds_(?:sum|count)|"
    r"responses_total|sla_breaches_total|open_items|sla_judged|sla_in_time|"
    r"oldest_open_item_age_seconds|sla_compliance_ratio|moderator_responses_total|"
    r"detection_lag_seconds_(?:sum|count)|source_up|roster_gap|"
    r"poll_duration_seconds_(?:sum|count)|"
    r"poll_errors_total|last_successful_poll_timestamp_seconds|api_usage_ratio|"
    r"token_expiry_timestamp_seconds|source_skipped_total)|webcare:[a-z_:0-9]+)\{([^}]*)\}"
)
# Per-brand metrics (no source label, docs/metrics.md): the Brand variable alone.
_PER_BRAND = {
    "webcare_first_response_sla_seconds_bucket",
    "webcare:first_response_sla_seconds_bucket:increase1d",
}


def test_every_query_honours_the_brand_and_source_variables() -> None:
    for dashboard in load_dashboards().values():
        for panel in panels(dashboard):
            for query in panel.get("targets", []):
                expr = query["expr"]
                for metric, matchers in _BRAND_METRICS.findall(expr):
                    assert 'brand=~"$brand"' in matchers, (panel["title"], metric)
                    if metric in _PER_BRAND:
                        assert "source" not in matchers, (panel["title"], metric)
                    else:
                        assert 'source=~"$source"' in matchers, (panel["title"], metric)
                for metric in _PER_BRAND:
                    for matchers in re.findall(re.escape(metric) + r"\{([^}]*)\}", expr):
                        assert 'brand=~"$brand"' in matchers, (panel["title"], metric)
                for bare in re.finditer(r"\b(webcare_\w+)(\{)?", expr):
                    # The webhook counter has neither label: it is per endpoint.
                    if bare.group(1) != "webcare_webhook_deliveries_total":
                        assert bare.group(2), f"{panel['title']!r}: {bare.group(1)} unfiltered"
                if "webcare_webhook_deliveries_total" in expr:
                    # ... so it follows the variables through the sources the endpoint serves.
                    assert 'platform=~"$platform"' in expr, panel["title"]


def require_binary(name: str, package: str) -> str:
    """The binary's path; skipped where it is missing, except in CI where it must be there."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} missing in CI (.ci/run installs the {package} package)")
        pytest.skip(f"{name} not installed (apt-get install {package})")
    return path


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each expression (variables given Grafana-like values) as a rule."""
    promtool = require_binary("promtool", "prometheus")
    rules = ["groups:", "  - name: dashboard-queries", "    rules:"]
    count = 0
    for name, dashboard in load_dashboards().items():
        for panel in panels(dashboard):
            for query in panel.get("targets", []):
                expr = (
                    query["expr"]
                    .replace("$__rate_interval", "1m")
                    .replace("$__interval", "15s")
                    .replace("$__range", "1h")
                    .replace("$brand", ".*")
                    .replace("$source", ".*")
                    .replace("$platform", ".*")
                    .replace("$receiver", ".*")
                    .replace("$job", "webcare-monitor")
                )
                assert "$" not in expr, f"{name} {panel['title']!r}: {expr}"
                count += 1
                rules += [
                    f"      - record: dashboard:query:{count}",
                    f"        expr: {json.dumps(expr)}",
                ]
    path = tmp_path / "queries.yml"
    path.write_text("\n".join(rules) + "\n", encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {count} rules found" in result.stdout


# --- a misspelt key fails ------------------------------------------------------------------------


def _first_panel(dashboard: Json, kind: str) -> Json:
    return next(p for p in panels(dashboard) if p["type"] == kind)


def _rename(mapping: Json, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


# Each mistake and the key or value the validator must name.
MISSPELLINGS = {
    "dashboard key": lambda d: _rename(d, "refresh", "refersh"),
    "panel key": lambda d: _rename(_first_panel(d, "stat"), "gridPos", "gridpos"),
    "variable key": lambda d: _rename(d["templating"]["list"][1], "includeAll", "includeALL"),
    "field config key": lambda d: _rename(
        _first_panel(d, "stat")["fieldConfig"]["defaults"], "unit", "units"
    ),
    "threshold step key": lambda d: _rename(
        _first_panel(d, "stat")["fieldConfig"]["defaults"]["thresholds"]["steps"][0],
        "color",
        "colour",
    ),
    "stat option": lambda d: _rename(_first_panel(d, "stat")["options"], "textMode", "textmode"),
    "timeseries custom field option": lambda d: _rename(
        _first_panel(d, "timeseries")["fieldConfig"]["defaults"]["custom"],
        "drawStyle",
        "drawstyle",
    ),
    "table option": lambda d: _rename(
        _first_panel(d, "table")["options"], "showHeader", "showHeaders"
    ),
    "Prometheus query key": lambda d: _rename(
        _first_panel(d, "stat")["targets"][0], "legendFormat", "legendFromat"
    ),
    "enum value": lambda d: _first_panel(d, "stat")["options"].update(colorMode="colour"),
}


@pytest.mark.parametrize("mistake", sorted(MISSPELLINGS))
def test_a_misspelt_key_fails_validation(schema: Schema, mistake: str) -> None:
    dashboard = copy.deepcopy(load_dashboards()["webcare-brand-overview.json"])
    assert all_errors(schema, dashboard) == []
    MISSPELLINGS[mistake](dashboard)
    errors = all_errors(schema, dashboard)
    assert errors, f"a misspelt {mistake} passed validation"
    # One mistake, one place: an unknown key (and the required key it replaced, if any).
    assert len({e.split(": ")[0] + e.split(": ")[1] for e in errors}) == 1, errors
    assert any("unknown key" in e or "is not one of" in e for e in errors), errors


def test_the_validator_rejects_what_grafana_would(schema: Schema) -> None:
    """Wrong types, missing required keys and unknown panel option keys are all reported."""
    bad: Json = {"schemaVersion": "42", "panels": [{"title": "no type"}], "tags": ["ok", 3]}
    errors = schema.errors(bad, "GrafanaDashboard")
    assert "$.schemaVersion: str is not number" in errors
    assert any("$.tags[1]" in e for e in errors)
    assert any("$.panels[0]" in e and "matches none of anyOf" in e for e in errors)
    stat = {"reduceOptions": {"calcs": []}, "colorMode": "value", "sparkle": True}
    errors = schema.errors(stat, "Options_stat")
    assert "$: unknown key 'sparkle'" in errors
    assert "$: required key 'textMode' is missing" in errors


# --- provisioning --------------------------------------------------------------------------------


def test_provisioning_points_grafana_at_the_dashboards_and_the_datasource() -> None:
    datasource = (PROVISIONING / "datasources" / "webcare-prometheus.yaml").read_text()
    provider = (PROVISIONING / "dashboards" / "webcare.yaml").read_text()
    assert re.search(r"^apiVersion: 1$", datasource, re.M)
    assert re.search(r"^\s+type: prometheus$", datasource, re.M)
    # The dashboards' datasource variable defaults to this uid.
    uid = re.search(r"^\s+uid: (\S+)$", datasource, re.M)
    assert uid is not None
    for dashboard in load_dashboards().values():
        variable = dashboard["templating"]["list"][0]
        assert variable["current"]["value"] == uid.group(1)
    assert re.search(r"^apiVersion: 1$", provider, re.M)
    assert re.search(r"^\s+type: file$", provider, re.M)
    assert re.search(r"^\s+path: /var/lib/grafana/dashboards/webcare$", provider, re.M)
