"""Issue 15, part 5: every labelled series a rule reads is at 0 before any event.

A counter series that only appears with its first event makes `rate()` and `increase()` miss
that event (there is no earlier sample to compare with), so an alert such as
`increase(webcare_alerts_total{outcome="dead"}[1h]) > 0` would stay silent for the first
dead-lettered notification. The real service (create_app, SQLite, fake clock, nothing polled
and nothing delivered yet) must therefore export every such series at 0 from the start.
Issue 17, part 6: only those (and a few cheap ones); a series no rule reads appears with its
first event, so a quiet source costs few series.
"""

from __future__ import annotations

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
from monitor.metrics.instruments import ALERT_OUTCOMES, WEBHOOK_OUTCOMES
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
            brand = source["brand"]
            sla = value(found, "webcare_first_response_sla_seconds_count", brand=brand, period=p)
            assert sla == 0, (brand, p)
            for outcome in Outcome:
                assert (
                    value(found, "webcare_responses_total", **source, period=p, outcome=outcome)
                    == 0
                ), (source, p, outcome)
    # Read by no rule: they appear with their first event (poll errors, skips, dismissals,
    # the wall-clock, lag and poll-duration summaries).
    for name in (
        "webcare_poll_errors_total",
        "webcare_source_skipped_total",
        "webcare_items_dismissed_total",
        "webcare_first_response_seconds_count",
        "webcare_poll_duration_seconds_count",
        "webcare_detection_lag_seconds_count",
    ):
        assert not [labels for n, labels in found if n == name], name
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


def _rule_exprs(text: str) -> list[str]:
    """Every rule's `expr` in a rules file (inline or a `|` block), not its annotations."""
    exprs: list[str] = []
    lines = text.splitlines()
    for n, line in enumerate(lines):
        key, _, rest = line.strip().partition(" ")
        if key != "expr:":
            continue
        if rest != "|":
            exprs.append(rest)
            continue
        indent = len(line) - len(line.lstrip())
        block = []
        for more in lines[n + 1 :]:
            if more.strip() and len(more) - len(more.lstrip()) <= indent:
                break
            block.append(more)
        exprs.append("\n".join(block))
    return exprs


def _queried_counters() -> set[str]:
    """Every counter and histogram the rules read, as exposed names.

    The dashboards' graphs may miss a series' very first event; an alert may not.
    """
    exprs = [
        expr
        for path in ROOT.glob("deploy/prometheus/rules/*.yml")
        for expr in _rule_exprs(path.read_text(encoding="utf-8"))
    ]
    names: set[str] = set()
    for expr in exprs:
        names |= set(re.findall(r"\b(webcare_\w+?(?:_total|_bucket))\b", expr))
    return names


async def test_every_counter_a_rule_reads_is_exported_before_any_event(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    found = samples(await fresh_metrics(graph, tmp_path, aiohttp_client))
    exported = {name for name, _ in found}
    queried = _queried_counters()
    assert {
        "webcare_alerts_total",
        "webcare_responses_total",
        "webcare_first_response_sla_seconds_bucket",
    } <= queried
    missing = queried - exported - UNKNOWABLE
    assert not missing, f"read by a rule but absent before any event: {missing}"
    for name, labels in found:
        if name in queried and name.endswith("_total"):
            assert found[(name, labels)] == 0, (name, dict(labels))
