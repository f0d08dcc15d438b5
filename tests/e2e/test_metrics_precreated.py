"""Issue 15, part 5: every labelled series a dashboard or rule reads is at 0 before any event.

A counter series that only appears with its first event makes `rate()` and `increase()` miss
that event (there is no earlier sample to compare with), so an alert such as
`increase(webcare_alerts_total{outcome="dead"}[1h]) > 0` would stay silent for the first
dead-lettered notification. The real service (create_app, SQLite, fake clock, nothing polled
and nothing delivered yet) must therefore export every such series at 0 from the start.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.config.alerts import ALL_KINDS
from monitor.domain import Outcome, Period
from monitor.metrics.instruments import (
    ALERT_OUTCOMES,
    POLL_ERROR_REASONS,
    SKIP_REASONS,
    WEBHOOK_OUTCOMES,
)
from monitor.simulator.graph_api import FakeGraphApi
from tests.e2e.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FB = {"brand": "acme", "source": "acme-fb"}
FORUM = {"brand": "shop", "source": "shop-forum"}
RECEIVERS = """
[[receivers]]
name = "team-console"
type = "console"

[[receivers]]
name = "lead-breaches"
type = "console"
kinds = ["breach", "escalation"]
"""
FORUM_SOURCE = """
[[sources]]
type = "discourse"
name = "shop-forum"
brand = "shop"
base_url = "http://127.0.0.1:9/"
api_key = "k"
api_username = "system"
categories = [1]
moderators = ["alice"]
"""
# Counters a dashboard or rule reads whose label values are not known before the event: the
# responder's name as the platform gives it.
UNKNOWABLE = {"webcare_moderator_responses_total"}


async def fresh_metrics(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any) -> Any:
    config = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        extra=FORUM_SOURCE + RECEIVERS,
    )
    app = create_app(load_config(config), clock=FakeClock(NOW), start_polling=False)
    client = await aiohttp_client(app)
    response = await client.get("/metrics")
    assert response.status == 200
    return list(text_string_to_metric_families(await response.text()))


def samples(families: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in families
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def test_counters_exist_at_zero_before_any_event(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    found = samples(await fresh_metrics(graph, tmp_path, aiohttp_client))
    for source in (FB, FORUM):
        for period in Period:
            p = period.value
            assert value(found, "webcare_items_total", **source, period=p) == 0
            assert value(found, "webcare_sla_breaches_total", **source, period=p) == 0
            assert value(found, "webcare_first_response_seconds_count", **source, period=p) == 0
            for outcome in Outcome:
                assert (
                    value(found, "webcare_responses_total", **source, period=p, outcome=outcome)
                    == 0
                ), (source, p, outcome)
        for reason in POLL_ERROR_REASONS:
            got = value(found, "webcare_poll_errors_total", **source, reason=reason)
            assert got == 0, (source, reason)
        for reason in SKIP_REASONS:
            assert value(found, "webcare_source_skipped_total", **source, reason=reason) == 0
        assert value(found, "webcare_poll_duration_seconds_count", **source) == 0
        assert value(found, "webcare_detection_lag_seconds_count", **source) == 0
    for outcome in WEBHOOK_OUTCOMES:
        got = value(found, "webcare_webhook_deliveries_total", platform="facebook", outcome=outcome)
        assert got == 0, outcome


async def test_every_configured_receiver_has_each_of_its_kinds_and_outcomes_at_zero(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    found = samples(await fresh_metrics(graph, tmp_path, aiohttp_client))
    expected = {
        "team-console": set(ALL_KINDS),
        "lead-breaches": {"breach", "escalation"},
    }
    for receiver, kinds in expected.items():
        for kind in ALL_KINDS:
            for outcome in ALERT_OUTCOMES:
                got = value(
                    found, "webcare_alerts_total", kind=kind, receiver=receiver, outcome=outcome
                )
                # Only the kinds the receiver is sent: no series that can never move.
                assert got == (0 if kind in kinds else None), (receiver, kind, outcome)
        assert value(found, "webcare_alert_outbox_pending", receiver=receiver) == 0
        assert value(found, "webcare_alert_delivery_seconds_count", receiver=receiver) == 0


def _exprs(node: Any) -> list[str]:
    """Every `expr` of a dashboard's JSON, however deep."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for v in node.values() for e in _exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in _exprs(v)]
    return []


def _queried_counters() -> set[str]:
    """Every counter and histogram the dashboards and rules read, as exposed names."""
    exprs = [
        expr
        for path in ROOT.glob("dashboards/webcare-*.json")
        for expr in _exprs(json.loads(path.read_text(encoding="utf-8")))
    ]
    exprs += [p.read_text(encoding="utf-8") for p in ROOT.glob("deploy/prometheus/rules/*.yml")]
    names: set[str] = set()
    for expr in exprs:
        names |= set(re.findall(r"\b(webcare_\w+?(?:_total|_bucket))\b", expr))
    return names


async def test_every_counter_a_dashboard_or_rule_reads_is_exported_before_any_event(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    found = samples(await fresh_metrics(graph, tmp_path, aiohttp_client))
    exported = {name for name, _ in found}
    queried = _queried_counters()
    assert {"webcare_alerts_total", "webcare_responses_total", "webcare_poll_errors_total"} <= (
        queried
    )
    missing = queried - exported - UNKNOWABLE
    assert not missing, f"read by a dashboard or rule but absent before any event: {missing}"
    for name, labels in found:
        if name in queried and name.endswith("_total"):
            assert found[(name, labels)] == 0, (name, dict(labels))
