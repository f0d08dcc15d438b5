"""Rolling SLA compliance, computed from the store in the background and served from memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.domain import SourceRef
from monitor.store import Store

WINDOWS = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}


class RollingCompliance(Collector):
    """webcare_sla_compliance_ratio{window}: in_time / (in_time + late + breached_open)."""

    def __init__(self, sources: Iterable[SourceRef]) -> None:
        self._sources = {ref.name: ref for ref in sources}
        self._ratios: dict[tuple[str, str, str], float] = {}
        self._with_figures: frozenset[str] = frozenset()

    async def refresh(self, store: Store, now: datetime) -> None:
        """Recompute every window from the store (so it is right after a restart too)."""
        ratios: dict[tuple[str, str, str], float] = {}
        for window, span in WINDOWS.items():
            counts = await store.compliance_counts(now - span, now)
            for (source, period), (in_time, late, breached) in counts.items():
                denominator = in_time + late + breached
                # No judged item in the window: the ratio is undefined, so no sample at all.
                if source in self._sources and denominator:
                    ratios[(source, period, window)] = in_time / denominator
        self._ratios = ratios
        self._with_figures = frozenset(source for source, _, _ in ratios)

    def has_figures(self, source: str) -> bool:
        """Whether any window of the source has a ratio (else its series are missing)."""
        return source in self._with_figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Render the last computed ratios."""
        family = GaugeMetricFamily(
            "webcare_sla_compliance_ratio",
            "Share of judged items answered within target, items created in the window.",
            labels=["brand", "source", "period", "window"],
        )
        for (source, period, window), ratio in sorted(self._ratios.items()):
            family.add_metric([self._sources[source].brand, source, period, window], ratio)
        yield family
