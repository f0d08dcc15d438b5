"""What this instance exports: the series of the sources and receivers it holds, and who
holds how many sources (webcare_instance_sources)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.cluster.member import Holdings
from monitor.metrics.render import OPENMETRICS_EOF, Keep, collector_text, encode


class HeldSeries(Collector):
    """The registry, less the series of sources and receivers another instance holds.

    Several instances scraped by one Prometheus thus never count a source twice: a series
    with a `source` label comes only from the instance polling that source, one with a
    `receiver` label only from the instance delivering to it. Series with neither label
    (build info, HTTP refusals, webhook deliveries) belong to each instance. `expose` is the
    fast path /metrics takes (monitor.metrics.render); `collect` gives the same samples.
    """

    def __init__(self, registry: Collector, instance: str, holdings: Callable[[], Holdings]):
        self._registry = registry
        self._instance = _InstanceSources(instance, holdings)
        self._holdings = holdings

    def expose(self, *, openmetrics: bool, keep: Keep | None = None) -> str:
        """The held series and webcare_instance_sources as exposition text."""
        mine = _keep(self._holdings())
        both = mine if keep is None else (lambda s, r: mine(s, r) and keep(s, r))
        body = encode(self._registry, openmetrics=openmetrics, keep=both).decode("utf-8")
        own = collector_text(self._instance, openmetrics=openmetrics)
        return body.removesuffix(OPENMETRICS_EOF) + own

    def collect(self) -> Iterator[Metric]:
        """The held series, then webcare_instance_sources."""
        keep = _keep(self._holdings())
        for family in self._registry.collect():
            samples = [
                s for s in family.samples if keep(s.labels.get("source"), s.labels.get("receiver"))
            ]
            if len(samples) != len(family.samples):
                family.samples = samples
            yield family
        yield from self._instance.collect()


class _InstanceSources(Collector):
    """webcare_instance_sources{instance}: how many sources this instance holds."""

    def __init__(self, instance: str, holdings: Callable[[], Holdings]) -> None:
        self._name = instance
        self._holdings = holdings

    def collect(self) -> Iterator[Metric]:
        """One sample, labelled with this instance's own name."""
        # With `honor_labels: true` (our Prometheus configs) the label stays `instance`;
        # otherwise Prometheus keeps it as `exported_instance`.
        gauge = GaugeMetricFamily(
            "webcare_instance_sources",
            "Sources whose lease this instance holds (it polls them and exports their series).",
            labels=["instance"],
        )
        gauge.add_metric([self._name], len(self._holdings().sources))
        yield gauge


def _keep(held: Holdings) -> Keep:
    """Whether a series of this source and receiver label belongs to this instance."""

    def keep(source: str | None, receiver: str | None) -> bool:
        if source is not None:
            return source in held.sources
        return receiver is None or receiver in held.receivers

    return keep
