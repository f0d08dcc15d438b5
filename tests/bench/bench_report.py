"""The report's cost in the number of sources: 100,000 items over 1 and over 1,000 sources.

Run: .venv/bin/python -m tests.bench.bench_report

Prints the time of `build_report` for each; the figures go in tests/bench/README.md. It used to
rescan every item once per source (4.02 s at 1,000 sources against 0.81 s at one); grouped
once, the cost follows the items.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from monitor.domain import ItemState, Period
from monitor.report import ReportItem, build_report
from monitor.words import counted

NOW = datetime(2026, 11, 20, tzinfo=UTC)
ITEMS = 100_000


def items(count: int, sources: int, rng: random.Random) -> list[ReportItem]:
    """Answered items spread over `sources` sources (20 per brand) and six days."""
    made = []
    for k in range(count):
        source = k % sources
        created = NOW - timedelta(minutes=rng.randrange(1, 60 * 24 * 6))
        wall = rng.randrange(60, 7200)
        made.append(
            ReportItem(
                message_id=k,
                source=f"s{source}",
                brand=f"b{source // 20}",
                created_at=created,
                period=Period.AFTER_HOURS if k % 3 else Period.OFFICE_HOURS,
                weekend=False,
                holiday=None,
                state=ItemState.ANSWERED_IN_TIME if wall < 1800 else ItemState.ANSWERED_LATE,
                warning_at=created + timedelta(minutes=20),
                due_at=created + timedelta(minutes=30),
                responder="r",
                responded_at=created + timedelta(seconds=wall),
                response_seconds=float(wall),
                response_sla_seconds=float(wall),
                permalink=None,
                author=None,
            )
        )
    return made


def main() -> None:
    rng = random.Random(1)
    timings = {}
    for sources in (1, 1000):
        data = items(ITEMS, sources, rng)
        started = time.perf_counter()
        build_report(data, since=NOW - timedelta(days=7), until=NOW, as_of=NOW)
        timings[sources] = time.perf_counter() - started
        print(f"{ITEMS:,} items over {counted(sources, 'source')}: {timings[sources]:.2f} s")
    print(f"ratio 1,000 sources / 1 source: {timings[1000] / timings[1]:.2f}x")


if __name__ == "__main__":
    main()
