"""Rolling SLA compliance, computed from the store in the background and served from memory."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.domain import SourceRef
from monitor.metrics.text import header, labelled, value_text
from monitor.store import Store

WINDOWS = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
LABELS = ("brand", "source", "period", "window")
# (name, help) of the three gauges, in the order they are exported.
FAMILIES = (
    (
        "webcare_sla_compliance_ratio",
        "Share of judged items answered within target, items created in the window.",
    ),
    (
        "webcare_sla_judged",
        "Judged items (in time + late + breached and still waiting) created in the window;"
        " sum(in_time) / sum(judged) is the exact compliance of several sources.",
    ),
    (
        "webcare_sla_in_time",
        "Items created in the window answered within their target.",
    ),
)


@dataclass(frozen=True)
class Counts:
    """What one (source, period, window) is judged on."""

    judged: int
    in_time: int


class RollingCompliance(Collector):
    """webcare_sla_compliance_ratio{window} = webcare_sla_in_time / webcare_sla_judged.

    judged = in_time + late + breached_open. The text of each source is made once per refresh
    (once a minute), so a scrape only joins it.
    """

    def __init__(self, sources: Iterable[SourceRef]) -> None:
        self._sources = {ref.name: ref for ref in sources}
        self._counts: dict[tuple[str, str, str], Counts] = {}
        self._with_figures: frozenset[str] = frozenset()
        # Per source, its lines of each family (FAMILIES' order).
        self._lines: dict[str, tuple[str, str, str]] = {}
        self._only: frozenset[str] | None = None

    async def refresh(self, store: Store, now: datetime) -> None:
        """Recompute every window from the store (so it is right after a restart too)."""
        counts: dict[tuple[str, str, str], Counts] = {}
        for window, span in WINDOWS.items():
            found = await store.compliance_counts(now - span, now)
            for (source, period), (in_time, late, breached) in found.items():
                judged = in_time + late + breached
                # No judged item in the window: the ratio is undefined, so no sample at all.
                if source in self._sources and judged:
                    counts[(source, period, window)] = Counts(judged, in_time)
        lines: dict[str, tuple[list[str], list[str], list[str]]] = {}
        for (source, period, window), c in sorted(counts.items()):
            names = lines.setdefault(source, ([], [], []))
            labels = (self._sources[source].brand, source, period, window)
            for out, (name, _), value in zip(
                names, FAMILIES, (c.in_time / c.judged, c.judged, c.in_time), strict=True
            ):
                out.append(f"{labelled(name, LABELS, labels)} {value_text(value)}\n")
        self._counts = counts
        self._lines = {s: ("".join(r), "".join(j), "".join(i)) for s, (r, j, i) in lines.items()}
        self._with_figures = frozenset(lines)

    def has_figures(self, source: str) -> bool:
        """Whether any window of the source has a ratio (else its series are missing)."""
        return source in self._with_figures

    def restrict(self, names: Collection[str] | None) -> None:
        """Export only these sources from now on (None: every configured one)."""
        self._only = None if names is None else frozenset(names)

    def _shown(self, source: str) -> bool:
        return self._only is None or source in self._only

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Render the last computed figures."""
        counts = self._counts
        for index, (name, documentation) in enumerate(FAMILIES):
            family = GaugeMetricFamily(name, documentation, labels=list(LABELS))
            for (source, period, window), c in sorted(counts.items()):
                if self._shown(source):
                    value = (c.in_time / c.judged, c.judged, c.in_time)[index]
                    family.add_metric([self._sources[source].brand, source, period, window], value)
            yield family

    def expose(
        self, *, openmetrics: bool, keep: Callable[[str | None, str | None], bool] | None = None
    ) -> str:
        """collect() as exposition text, from the lines made at the last refresh.

        `keep(source, receiver)`: export a source's series only when it says so.
        """
        lines = {
            source: text
            for source, text in self._lines.items()
            if self._shown(source) and (keep is None or keep(source, None))
        }
        parts = []
        for index, (name, documentation) in enumerate(FAMILIES):
            parts.append(header(name, "gauge", documentation, openmetrics=openmetrics))
            parts.extend(text[index] for text in lines.values())
        return "".join(parts)
