"""The fast /metrics encoder writes prometheus_client's bytes; the collectors' restrict()."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, Summary
from prometheus_client import generate_latest as text_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from monitor.domain import Item, ItemState, Period, SourceRef
from monitor.metrics import Metrics, OpenItems
from monitor.metrics.compliance import RollingCompliance
from monitor.metrics.render import encode
from monitor.store import Store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
REFS = [
    SourceRef(name="acme-fb", brand="acme", platform="facebook_page"),
    SourceRef(name="acme-forum", brand="acme", platform="discourse"),
    SourceRef(name='shop "quoted" \\ new\nline', brand="shop", platform="phpbb_atom"),
]


class Counts:
    """The store's compliance query, fixed figures."""

    async def compliance_counts(
        self, since: datetime, until: datetime
    ) -> dict[tuple[str, str], tuple[int, int, int]]:
        return {
            ("acme-fb", "office_hours"): (3, 1, 0),
            ("acme-forum", "after_hours"): (1, 0, 2),
            (REFS[2].name, "office_hours"): (7, 0, 0),
            ("unknown", "office_hours"): (1, 1, 1),
        }


def item(n: int, source: str, state: ItemState, minutes: int) -> Item:
    return Item(
        message_id=n,
        source=source,
        brand="acme",
        thread_id=str(n),
        created_at=NOW - timedelta(minutes=minutes),
        period=Period.OFFICE_HOURS,
        weekend=False,
        state=state,
        target_seconds=1800,
        warning_at=NOW,
        due_at=NOW,
    )


def collectors() -> tuple[OpenItems, RollingCompliance]:
    open_items = OpenItems(REFS, now=lambda: NOW)
    open_items.load(
        [
            item(1, "acme-fb", ItemState.OPEN, 5),
            item(2, "acme-fb", ItemState.BREACHED, 90),
            item(3, "acme-forum", ItemState.WARNING, 40),
        ]
    )
    compliance = RollingCompliance(REFS)
    asyncio.run(compliance.refresh(cast(Store, Counts()), NOW))
    return open_items, compliance


def filled() -> CollectorRegistry:
    """The service's registry with values in every kind of instrument, plus oddities."""
    metrics = Metrics(version="1.2.3", targets=[1800, 3600])
    for ref in REFS:
        metrics.prepare(ref)
    metrics.prepare_receiver("team")
    metrics.items.labels("acme", "acme-fb", "office_hours").inc(1_234_567)
    metrics.first_response.labels("acme", "acme-fb", "office_hours").observe(1200)
    metrics.first_response_sla.labels("acme", "office_hours").observe(1800)
    metrics.first_response_sla.labels("acme", "office_hours").observe(1e9)
    metrics.poll_errors.labels("shop", REFS[2].name, "auth").inc()
    metrics.api_usage.labels("acme", "acme-fb").set(0.1 + 0.2)
    r = metrics.registry
    # Instruments of every kind the encoder knows, label-less and labelled, and one it does not.
    Counter("plain_events", "A counter without labels.", registry=r).inc(2)
    Gauge("plain_level", 'Help with "quotes" and \\ a backslash.', registry=r).set(-3.5)
    Histogram("plain_seconds", "Label-less histogram.", buckets=(0.5, 2), registry=r).observe(1)
    Summary("plain_size", "A summary.", ["kind"], registry=r).labels("a").observe(7)
    Info("plain_build", "An info metric.", registry=r).info({"commit": "abc"})
    for collector in collectors():
        r.register(collector)
    return r


def test_the_encoder_writes_prometheus_clients_bytes_in_both_formats() -> None:
    registry = filled()
    for _ in range(2):  # the second time from the cached texts
        assert encode(registry, openmetrics=False) == text_latest(registry)
        assert encode(registry, openmetrics=True) == openmetrics_latest(registry)  # type: ignore[no-untyped-call]


def test_a_changed_value_is_written_again_and_a_removed_series_leaves() -> None:
    registry = filled()
    metrics_text = encode(registry, openmetrics=False)
    assert (
        b'webcare_items_total{brand="acme",period="office_hours",source="acme-fb"} 1.234567e+06'
        in (metrics_text)
    )
    gauge = next(
        c for c in registry._collector_to_names if getattr(c, "_name", "") == "plain_level"
    )
    assert isinstance(gauge, Gauge)
    gauge.set(4)
    assert b"plain_level 4.0\n" in encode(registry, openmetrics=False)
    summary = next(
        c for c in registry._collector_to_names if getattr(c, "_name", "") == "plain_size"
    )
    assert isinstance(summary, Summary)
    summary.remove("a")
    assert encode(registry, openmetrics=False) == text_latest(registry)
    assert b"plain_size_count" not in encode(registry, openmetrics=False)


def sources_of(collector: OpenItems | RollingCompliance) -> set[str]:
    registry = CollectorRegistry()
    registry.register(collector)
    found = {
        sample.labels["source"]
        for family in collector.collect()
        for sample in family.samples
        if "source" in sample.labels
    }
    # The fast text says the same as collect().
    text = encode(registry, openmetrics=True).decode()
    parsed = {
        s.labels["source"]
        for f in text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
        for s in f.samples
    }
    assert parsed == found
    return found


def test_restrict_exports_only_the_named_sources() -> None:
    for collector in collectors():
        everyone = {ref.name for ref in REFS}
        assert sources_of(collector) == everyone
        collector.restrict(["acme-forum", "not-configured"])
        assert sources_of(collector) == {"acme-forum"}
        collector.restrict([])
        assert sources_of(collector) == set()
        collector.restrict(None)
        assert sources_of(collector) == everyone


def test_compliance_exports_the_counts_behind_each_ratio() -> None:
    _, compliance = collectors()
    figures = {
        (f.name, s.labels["source"], s.labels["period"], s.labels["window"]): s.value
        for f in compliance.collect()
        for s in f.samples
    }
    key = ("acme-fb", "office_hours", "7d")
    assert figures[("webcare_sla_judged", *key)] == 4
    assert figures[("webcare_sla_in_time", *key)] == 3
    assert figures[("webcare_sla_compliance_ratio", *key)] == 3 / 4
    forum = ("acme-forum", "after_hours", "30d")
    assert (figures[("webcare_sla_in_time", *forum)], figures[("webcare_sla_judged", *forum)]) == (
        1,
        3,
    )
    # Nothing judged in a period, or an unknown source: no series at all.
    assert ("webcare_sla_judged", "acme-fb", "after_hours", "7d") not in figures
    assert not [k for k in figures if k[1] == "unknown"]


def test_keep_leaves_out_the_series_of_sources_and_receivers_held_elsewhere() -> None:
    registry = filled()

    def keep(source: str | None, receiver: str | None) -> bool:
        return source in (None, "acme-fb") and receiver is None

    text = encode(registry, openmetrics=True, keep=keep).decode()
    found = [
        s.labels
        for f in text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
        for s in f.samples
    ]
    assert {labels.get("source") for labels in found} == {None, "acme-fb"}
    assert not [labels for labels in found if "receiver" in labels]
    assert {"brand": "acme", "period": "office_hours", "le": "1800.0"} in found


def test_a_function_gauge_is_read_at_every_render() -> None:
    registry = CollectorRegistry()
    backlog = [3]
    gauge = Gauge("webcare_backlog", "Waiting.", ["receiver"], registry=registry)
    gauge.labels("team").set_function(lambda: backlog[0])
    first = encode(registry, openmetrics=False)
    backlog[0] = 7
    second = encode(registry, openmetrics=False)
    assert b'webcare_backlog{receiver="team"} 3.0' in first
    assert second == text_latest(registry)
    assert b'webcare_backlog{receiver="team"} 7.0' in second
