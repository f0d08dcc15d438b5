"""Issue 8, acceptance 2: every dashboard query, run by a real Prometheus against the demo.

A real Prometheus (Debian package, 1-second scrape and rule evaluation, deploy/prometheus rules
loaded) scrapes `python -m monitor demo`. Once the demo has history and live traffic in
Prometheus, the demo is stopped and the service is started again on the demo's database with
`python -m monitor run -c <the demo's config>`: its fake platforms are gone, so nothing changes
in the store any more, and the service computes its rolling compliance from that frozen store at
start (the demo, started on an empty database, would need its first 60-second refresh for that).
Then:

- every PromQL expression of every panel of every dashboard goes through Prometheus' HTTP API
  with the template variables substituted as Grafana does ($datasource, $brand, $source,
  $receiver, $job from their label_values() queries, both as "All" and as an explicit
  multi-selection; $__range, $__interval and $__rate_interval from the time range): each one
  is valid and returns data (at least one sample that is not NaN);
- the compliance stats (1d, 7d, 30d, per brand and period: summed in-time over summed judged
  items of the report's source rows), "Waiting for a first reply", "Breached, still waiting"
  and "Oldest waiting" equal what `webcare-monitor report --format json` says for the same
  window on the same database at the same moment.

Skipped where prometheus/promtool are not installed, except in CI where it fails instead.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest

from tests.e2e.test_restart import free_port
from tests.unit.test_dashboards import load_dashboards, panels, require_binary

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
SCRAPE_SECONDS = 1
JOB = "webcare-monitor"
# The demo's sources (monitor/demo.py): each must be live before the panels are judged.
DEMO_SOURCES = (
    "acme-facebook",
    "acme-forum",
    "acme-messenger",
    "acme-instagram",
    "acme-mastodon",
)
# Grafana's default for a panel without maxDataPoints: about its width in pixels.
PIXELS_PER_GRID_UNIT = 75
Json = dict[str, Any]


# --- processes -----------------------------------------------------------------------------------


def fetch(url: str, timeout: float = 5) -> str | None:
    try:
        with urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
            return body.decode()
    except (URLError, OSError):
        return None


def wait_for(what: str, check: Any, timeout: float, logs: list[Path]) -> Any:
    """Poll `check()` until it returns something truthy; fail with the logs' tails if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    tails = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs if p.exists()
    )
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


@dataclass
class Prometheus:
    """A real Prometheus on loopback, queried through its HTTP API."""

    url: str
    started: float

    def api(self, path: str, **params: str) -> Any:
        text = fetch(f"{self.url}/api/v1/{path}?{urlencode(params)}", timeout=10)
        assert text is not None, f"no answer from Prometheus for {path} {params}"
        body = json.loads(text)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Json]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        assert data["resultType"] == "vector", data
        result: list[Json] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def tools() -> tuple[str, str]:
    return require_binary("prometheus", "prometheus"), require_binary("promtool", "prometheus")


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stream:
        return subprocess.Popen(
            args,
            stdout=stream,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- Grafana's template variables ----------------------------------------------------------------


_ROUND_STEPS = [  # Grafana's rangeutil.roundInterval: (below this many seconds, use this step)
    (1.5, 1),
    (3.5, 2),
    (7.5, 5),
    (12.5, 10),
    (17.5, 15),
    (25, 20),
    (45, 30),
    (90, 60),
    (210, 120),
    (450, 300),
    (750, 600),
    (1050, 900),
    (1500, 1200),
    (2700, 1800),
    (5400, 3600),
    (9000, 7200),
    (16200, 10800),
    (32400, 21600),
    (86400, 43200),
    (604800, 86400),
]


def round_interval(seconds: float) -> int:
    for below, step in _ROUND_STEPS:
        if seconds < below:
            return step
    return 604800


@dataclass(frozen=True)
class TimeRange:
    start: float
    end: float

    @property
    def seconds(self) -> int:
        return round(self.end - self.start)


def builtins(panel: Json, window: TimeRange) -> dict[str, str]:
    """$__interval, $__rate_interval and $__range as Grafana computes them for this panel."""
    max_points = panel.get("maxDataPoints") or panel["gridPos"]["w"] * PIXELS_PER_GRID_UNIT
    interval = max(SCRAPE_SECONDS, round_interval(window.seconds / max_points))
    rate_interval = max(interval + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)
    return {
        "__interval": f"{interval}s",
        "__rate_interval": f"{rate_interval}s",
        "__range": f"{window.seconds}s",
        "__range_s": str(window.seconds),
    }


_REGEX_SPECIAL = re.compile(r"([$^*{}\[\]'+?.()|\\])")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def format_value(variable: Json, selected: list[str] | None) -> str:
    """A variable's value as Grafana's Prometheus datasource puts it into a query."""
    if selected is None:  # "All"
        return str(variable["allValue"])
    if not (variable.get("multi") or variable.get("includeAll")):
        return selected[0]
    escaped = [_REGEX_SPECIAL.sub(r"\\\\\1", v) for v in selected]
    return escaped[0] if len(escaped) == 1 else f"({'|'.join(escaped)})"


def interpolate(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        assert name in values, f"unknown variable ${name} in {text}"
        return values[name]

    return _VARIABLE.sub(replace, text)


_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")


def resolve_variables(
    prometheus: Prometheus, dashboard: Json, window: TimeRange, *, all_values: bool
) -> dict[str, str]:
    """Each template variable's query run like Grafana does, in order; All or every value."""
    values: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "datasource":
            values[variable["name"]] = variable["current"]["value"]
            continue
        assert variable["type"] == "query", variable
        match = _LABEL_VALUES.match(variable["query"])
        assert match, variable["query"]
        selector, label = interpolate(match.group(1), values), match.group(2)
        options = prometheus.api(
            f"label/{label}/values",
            **{"match[]": selector, "start": str(window.start), "end": str(window.end)},
        )
        assert options, f"variable {variable['name']} has no values ({selector})"
        # An "All" without allValue is every listed value, as Grafana sends it.
        everything = all_values and variable.get("includeAll") and "allValue" in variable
        selected = None if everything else sorted(options)
        values[variable["name"]] = format_value(variable, selected)
    return values


def run_panel_query(
    prometheus: Prometheus, panel: Json, query: Json, variables: dict[str, str], window: TimeRange
) -> tuple[str, list[Json]]:
    """The query as Grafana would send it: instant at the end, or a range with $__interval steps."""
    times = builtins(panel, window)
    expr = interpolate(query["expr"], {**variables, **times})
    if query.get("instant"):
        return expr, prometheus.query(expr, at=window.end)
    step = int(times["__interval"][:-1])
    data = prometheus.api(
        "query_range",
        query=expr,
        start=str(window.start // step * step),
        end=str(window.end // step * step),
        step=str(step),
    )
    assert data["resultType"] == "matrix", data
    return expr, data["result"]


def maps_nan(panel: Json) -> bool:
    """The panel shows a text for NaN (e.g. "none delivered"): there NaN is an answer."""
    return any(
        m["type"] == "special" and m["options"]["match"] in ("nan", "null+nan")
        for m in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", [])
    )


def has_data(result: list[Json], *, nan_is_data: bool = False) -> bool:
    """At least one sample that is a number (±Inf counts: "never expires" is a value)."""
    samples = [s["value"] for s in result if "value" in s]
    samples += [v for s in result for v in s.get("values", [])]
    return any(nan_is_data or not math.isnan(float(v)) for _, v in samples)


# --- the report ----------------------------------------------------------------------------------


def reports(config: Path, *windows: tuple[datetime, datetime, tuple[str, ...]]) -> list[Json]:
    """`webcare-monitor report --format json` for each (since, until, extra args), in parallel."""
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "report",
                "-c",
                str(config),
                "--since",
                since.isoformat(),
                "--until",
                until.isoformat(),
                "--format",
                "json",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for since, until, extra in windows
    ]
    bodies = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        bodies.append(json.loads(out))
    return bodies


def panel_named(dashboard: Json, title: str) -> Json:
    return next(p for p in panels(dashboard) if p["title"] == title)


def iso_seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


UNANSWERED = ("open", "warning", "breached")


# --- the test ------------------------------------------------------------------------------------


@pytest.fixture
def stack(tools: tuple[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real Prometheus (1 s scrape and rule evaluation, our rules) and the demo it scrapes."""
    prometheus_bin, _ = tools
    demo_port, prom_port = free_port(), free_port()
    workdir = tmp_path / "demo"
    config = tmp_path / "prometheus.yml"
    rule_files = "\n".join(f"  - {json.dumps(str(p))}" for p in RULES)
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  scrape_timeout: {SCRAPE_SECONDS}s\n"
        f"  evaluation_interval: {SCRAPE_SECONDS}s\n"
        f"rule_files:\n{rule_files}\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
        f'      - targets: ["127.0.0.1:{demo_port}"]\n',
        encoding="utf-8",
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("prometheus", "demo", "run")}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # Prometheus first, so that it sees the demo's series from their very first values.
        processes.append(
            start(
                [
                    prometheus_bin,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                ],
                logs["prometheus"],
            )
        )
        prometheus = Prometheus(url=f"http://127.0.0.1:{prom_port}", started=time.time())
        wait_for(
            "Prometheus to be ready",
            lambda: fetch(f"{prometheus.url}/-/ready") is not None,
            20,
            [logs["prometheus"]],
        )
        demo = start(
            [
                sys.executable,
                "-m",
                "monitor",
                "demo",
                "--port",
                str(demo_port),
                "--workdir",
                str(workdir),
            ],
            logs["demo"],
        )
        processes.append(demo)
        yield {
            "prometheus": prometheus,
            "demo": demo,
            "demo_port": demo_port,
            "workdir": workdir,
            "logs": logs,
            "processes": processes,
        }
    finally:
        for process in reversed(processes):
            stop(process, signal.SIGTERM)


COMPLIANCE_PANELS = {
    1: "Compliance, last 24 hours",
    7: "Compliance, last 7 days",
    30: "Compliance, last 30 days",
}


def test_every_panel_query_returns_data_and_matches_the_report(
    stack: dict[str, Any],
) -> None:
    prometheus: Prometheus = stack["prometheus"]
    logs: dict[str, Path] = stack["logs"]
    all_logs = list(logs.values())
    config = stack["workdir"] / "webcare-monitor.toml"
    began = time.monotonic()

    # 1. The demo's traffic reaches Prometheus: every source (page, forum, Messenger, Instagram,
    #    Mastodon) polled, live items detected on each, and at least one reply counted while
    #    Prometheus watched (the panels' rates and quantiles need an increase; the backfill is
    #    usually stored before the first scrape).
    sources = len(DEMO_SOURCES)
    live = (
        "count(sum by (source) (increase(webcare_detection_lag_seconds_count[5m])) > 0)"
        f" == {sources}"
        " and sum(increase(webcare_first_response_seconds_count[5m])) > 0"
        f" and count(webcare_source_up == 1) == {sources}"
    )
    wait_for("live demo traffic in Prometheus", lambda: prometheus.query(live), 50, all_logs)

    # 2. Freeze the store: stop the demo, start the service on its database and config.
    stop(stack["demo"])
    assert stack["demo"].returncode == 0, logs["demo"].read_text()[-3000:]
    metrics_url = f"http://127.0.0.1:{stack['demo_port']}/metrics"
    for _attempt in range(3):
        spawned = time.time()
        service = start([sys.executable, "-m", "monitor", "run", "-c", str(config)], logs["run"])
        stack["processes"].append(service)
        wait_for(
            "the restarted service's compliance gauge",
            lambda: "webcare_sla_compliance_ratio{" in (fetch(metrics_url) or ""),
            30,
            all_logs,
        )
        ready = time.time()
        until = datetime.fromtimestamp(ready, UTC)
        now = datetime.now(UTC)
        items, *summaries = reports(
            config,
            (now - timedelta(days=3650), now + timedelta(days=1), ("--items",)),
            *((until - timedelta(days=days), until, ()) for days in COMPLIANCE_PANELS),
        )
        # The service computed its compliance at one instant t in [spawned, ready], over
        # [t - window, t); the reports use `ready`. That is exact unless an item was created
        # within those seconds a window ago, or one came due since (both judge outcomes "now").
        # Rare; then start the service once more.
        judged_until = iso_seconds(items["as_of"])
        ambiguous = [
            i
            for i in items["rows"]
            if any(
                spawned - 86400 * days <= iso_seconds(i["created_at"]) <= ready - 86400 * days
                for days in COMPLIANCE_PANELS
            )
            or (i["state"] in UNANSWERED and spawned <= iso_seconds(i["due_at"]) <= judged_until)
        ]
        if not ambiguous:
            break
        stop(service)
    else:
        pytest.fail(f"items kept landing on a window edge: {ambiguous}")
    # Prometheus has scraped the restarted service.
    wait_for(
        "a scrape of the restarted service",
        lambda: prometheus.query(
            f'timestamp(webcare_sla_compliance_ratio{{window="7d"}}) > {ready}'
        ),
        10,
        all_logs,
    )
    # The restarted service polls platforms that stopped with the demo: the poll-error panel
    # needs its counter to rise once after Prometheus first saw it (a series is created by its
    # first error, so that needs the second failure after the backoff).
    wait_for(
        "poll errors rising in Prometheus",
        lambda: prometheus.query("sum(increase(webcare_poll_errors_total[1m])) > 0"),
        40,
        all_logs,
    )

    boards = load_dashboards()
    overview = boards["webcare-brand-overview.json"]
    window = TimeRange(start=prometheus.started, end=time.time())
    everything = resolve_variables(prometheus, overview, window, all_values=True)

    # 3. A few panel values against the report of the same window, on the same frozen store.
    for title, summary in zip(COMPLIANCE_PANELS.values(), summaries, strict=True):
        panel = panel_named(overview, title)
        _, result = run_panel_query(prometheus, panel, panel["targets"][0], everything, window)
        shown = {
            (s["metric"]["brand"], s["metric"]["period"]): float(s["value"][1]) for s in result
        }
        # Per brand and period: the report's in-time items over its judged items, summed over
        # the brand's sources (not their ratios averaged).
        counts: dict[tuple[str, str], list[int]] = {}
        for r in summary["rows"]:
            if r["source"] != "*" and r["period"] != "all":
                judged = r["answered_in_time"] + r["answered_late"] + r["breached_open"]
                sums = counts.setdefault((r["brand"], r["period"]), [0, 0])
                sums[0] += r["answered_in_time"]
                sums[1] += judged
        expected = {key: in_time / judged for key, (in_time, judged) in counts.items() if judged}
        assert len(expected) >= 2, summary
        assert shown == pytest.approx(expected), f"{title}: panel {shown} != report {expected}"
        print(f"{title}: panel == report: {sorted(shown.items())}")

    waiting = [i for i in items["rows"] if i["state"] in UNANSWERED]
    assert waiting, "the demo always leaves some items unanswered"
    panel = panel_named(overview, "Waiting for a first reply")
    _, result = run_panel_query(prometheus, panel, panel["targets"][0], everything, window)
    assert float(result[0]["value"][1]) == len(waiting)

    # The breached split follows the deadline scheduler, which catches up right after start.
    breached = sum(1 for i in waiting if i["state"] == "breached")
    print(f"waiting: panel == report: {len(waiting)}, of which breached: {breached}")
    expr = interpolate(
        panel_named(overview, "Breached, still waiting")["targets"][0]["expr"], everything
    )
    wait_for(
        f"{breached} breached items on the panel",
        lambda: prometheus.value(expr) == breached,
        10,
        all_logs,
    )

    expr = interpolate(panel_named(overview, "Oldest waiting")["targets"][0]["expr"], everything)
    (sample,) = prometheus.query(f"timestamp({expr})")
    scraped_at = float(sample["value"][1])
    (shown_age,) = prometheus.query(expr, at=scraped_at)
    oldest = min(iso_seconds(i["created_at"]) for i in waiting)
    # The gauge is computed when /metrics is rendered, a few milliseconds after the scrape began.
    assert float(shown_age["value"][1]) == pytest.approx(scraped_at - oldest, abs=1.0)

    # The channels side by side (issue 19): the per-platform table has a row for each of the
    # demo's platforms, the wall, the forum, Messenger, Instagram and Mastodon.
    panel = panel_named(overview, "Per platform")
    _, result = run_panel_query(prometheus, panel, panel["targets"][0], everything, window)
    shown_platforms = {s["metric"]["platform"] for s in result}
    demo_platforms = {"facebook_page", "discourse", "messenger", "instagram", "mastodon"}
    assert shown_platforms == demo_platforms, result

    # The webhook panel follows the Platform variable: /webhooks/facebook serves the Meta
    # sources, not the forum's.
    operations = boards["webcare-operations.json"]
    panel = panel_named(operations, "Facebook webhook deliveries (per minute)")
    selection = resolve_variables(prometheus, operations, window, all_values=True)
    for platform, shown in (("messenger", True), ("discourse", False), ("mastodon", False)):
        variables = {**selection, "platform": platform}
        _, result = run_panel_query(prometheus, panel, panel["targets"][0], variables, window)
        assert bool(result) is shown, (platform, result)

    # 4. Every query of every panel: valid, and data, with "All" and with explicit selections.
    window = TimeRange(start=prometheus.started, end=time.time())
    failures: list[str] = []
    ran = 0
    for name, dashboard in boards.items():
        for all_values in (True, False):
            variables = resolve_variables(prometheus, dashboard, window, all_values=all_values)
            for panel in panels(dashboard):
                for query in panel.get("targets", []):
                    expr, result = run_panel_query(prometheus, panel, query, variables, window)
                    ran += 1
                    if not has_data(result, nan_is_data=maps_nan(panel)):
                        failures.append(f"{name} / {panel['title']} / {expr}")
    assert not failures, "queries without data:\n" + "\n".join(failures)
    assert ran == 2 * sum(len(p.get("targets", [])) for d in boards.values() for p in panels(d))
    elapsed = time.monotonic() - began
    print(f"dashboards vs Prometheus: {ran} queries, {elapsed:.1f}s after the demo started")
