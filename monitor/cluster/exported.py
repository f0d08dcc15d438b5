"""What this instance exports: the series of the sources and receivers it holds, and who
holds how many sources (webcare_instance_sources)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.cluster.member import Holdings


class HeldSeries(Collector):
    """The registry, less the series of sources and receivers another instance holds.

    Several instances scraped by one Prometheus thus never count a source twice: a series
    with a `source` label comes only from the instance polling that source, one with a
    `receiver` label only from the instance delivering to it. Series with neither label
    (build info, HTTP refusals, webhook deliveries) belong to each instance.
    """

    def __init__(self, registry: Collector, instance: str, holdings: Callable[[], Holdings]):
        self._registry = registry
        self._instance = instance
        self._holdings = holdings

    def collect(self) -> Iterator[Metric]:
        """The held series, then webcare_instance_sources."""
        held = self._holdings()
        for family in self._registry.collect():
            samples = [s for s in family.samples if _held(s.labels, held)]
            if len(samples) != len(family.samples):
                family.samples = samples
            yield family
        # Labelled with this instance's own name: with `honor_labels: true` (our Prometheus
        # config) it stays `instance`; otherwise Prometheus keeps it as `exported_instance`.
        gauge = GaugeMetricFamily(
            "webcare_instance_sources",
            "Sources whose lease this instance holds (it polls them and exports their series).",
            labels=["instance"],
        )
        gauge.add_metric([self._instance], len(held.sources))
        yield gauge


def _held(labels: dict[str, str], held: Holdings) -> bool:
    source = labels.get("source")
    if source is not None:
        return source in held.sources
    receiver = labels.get("receiver")
    return receiver is None or receiver in held.receivers
