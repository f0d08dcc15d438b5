"""Brand overview's channels row: the Facebook wall, Messenger, Instagram and the forums side by
side, one table row per platform.

The per-source metrics carry no `platform` label; `webcare_source_up` does, so each query is
joined to it on (brand, source), which also applies the Platform variable.
"""

from __future__ import annotations

from .grafana import COLOR_TEXT, Panel, override, ref_id
from .vocabulary import BRAND_SOURCE, COMPLIANCE_STEPS, increase, table

# Each selected source with its platform (value 1): the right-hand side of every join.
SOURCE_PLATFORM = (
    "group by (brand, source, platform)"
    f' (webcare_source_up{{{BRAND_SOURCE}, platform=~"$platform"}})'
)


def per_platform(expr: str) -> str:
    """A per-source expression summed per platform."""
    return (
        f"sum by (platform) ({expr} * on (brand, source) group_left (platform) {SOURCE_PLATFORM})"
    )


def per_platform_table() -> Panel:
    """One row per platform, one column per query (merged like the per-source table)."""

    def sla(metric: str) -> str:
        return per_platform(f'webcare_sla_{metric}{{{BRAND_SOURCE}, window="7d"}}')

    def summary(part: str) -> str:
        return per_platform(increase(f"webcare_first_response_seconds_{part}"))

    columns = {
        "Items": per_platform(increase("webcare_items_total")),
        "Compliance 7d": f"{sla('in_time')} / {sla('judged')}",
        "Mean reply": f"{summary('sum')} / {summary('count')}",
        "Waiting now": per_platform(f"webcare_open_items{{{BRAND_SOURCE}}}"),
        "Sources up": (
            f'sum by (platform) (webcare_source_up{{{BRAND_SOURCE}, platform=~"$platform"}})'
        ),
    }
    return table(
        "Per platform",
        "The brand's channels side by side (Facebook wall, Messenger, Instagram, forums), one"
        " row per platform over the selected sources: consumer items stored in the selected"
        " range, rolling 7-day compliance from the store (in-time items over judged items,"
        " summed over the platform's sources), the mean wall-clock time to the first reply in"
        " the range, what waits now and how many of the platform's sources are polled"
        " successfully.",
        *((expr, name) for name, expr in columns.items()),
        sort_by="Items",
        descending=True,
        rename={"platform": "Platform"}
        | {f"Value #{ref_id(n)}": name for n, name in enumerate(columns)},
        overrides=[
            override("Items", decimals=0),
            override(
                "Compliance 7d",
                unit="percentunit",
                decimals=1,
                thresholds=COMPLIANCE_STEPS,
                **COLOR_TEXT,
            ),
            override("Mean reply", unit="s", decimals=0),
            override("Waiting now", decimals=0),
            override("Sources up", decimals=0),
        ],
    )
