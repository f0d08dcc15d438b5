"""How late do warning and breach events fire on the real clock? (DESIGN.md: at most 100 ms.)

Run: .venv/bin/python -m tests.bench.bench_deadlines [N]
Stores N items (SQLite, the real pipeline) whose warning and due instants fall 1-4 s ahead,
runs the real DeadlineScheduler on the system clock and reports the lateness of each event:
event time minus the instant it belongs to. The re-fetch before a breach is a no-op here, so
breach lateness is the scheduler's own (a real re-fetch adds one HTTP round trip).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.clock import SystemClock
from monitor.deadlines import DeadlineScheduler
from monitor.domain import Batch, Message, Period, SourceRef
from monitor.domain.events import Event, ItemBreached, ItemWarned
from monitor.pipeline import SourceSettings, handle_batch
from monitor.sla.calendar import ALWAYS
from monitor.sla.evaluate import SlaPolicy
from monitor.store import Store, create_engine, upgrade

REF = SourceRef(name="bench", brand="bench", platform="facebook_page")


async def main(n: int) -> None:
    """Run the measurement and print a summary."""
    clock = SystemClock()
    settings = SourceSettings(
        ref=REF,
        policy=SlaPolicy(
            office=ALWAYS,
            coverage=ALWAYS,
            targets={Period.OFFICE_HOURS: 3.0, Period.AFTER_HOURS: 3.0},
            warn_at=0.5,
            reply_match="thread",
        ),
        ignore_authors=frozenset(),
        active_days=14,
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await upgrade(engine)
        store = Store(engine)
        start = clock.now()
        messages = tuple(
            Message(
                platform_id=f"c_{i}",
                thread_id=f"t_{i % 50}",
                parent_id=None,
                author_id="u",
                author_name="U",
                text="?",
                # Spread the instants over one second so they do not all coincide.
                created_at=start + timedelta(milliseconds=(i * 1000) // n),
                seq=i,
                is_brand=False,
            )
            for i in range(n)
        )
        result = await handle_batch(store, settings, Batch(messages=messages, cursor={}), start)
        lateness: dict[str, list[float]] = {"warning": [], "breach": []}
        done = asyncio.Event()

        def on_events(events: list[Event]) -> None:
            fired_at = datetime.now(UTC)
            for event in events:
                if isinstance(event, ItemWarned):
                    lateness["warning"].append((fired_at - event.item.warning_at).total_seconds())
                elif isinstance(event, ItemBreached):
                    lateness["breach"].append((fired_at - event.item.due_at).total_seconds())
            if len(lateness["breach"]) == n:
                done.set()

        async def no_refetch(_source: str, _threads: frozenset[str]) -> None:
            return None

        scheduler = DeadlineScheduler(
            store=store,
            clock=clock,
            sources={REF.name: REF},
            refetch=no_refetch,
            on_events=on_events,
        )
        scheduler.load(e.item for e in result.events)
        task = asyncio.create_task(scheduler.run())
        await asyncio.wait_for(done.wait(), timeout=60)
        task.cancel()
        await engine.dispose()
    print(f"deadline lateness over {n} items (SQLite store, system clock):")
    for kind, values in lateness.items():
        values.sort()
        p99 = values[max(0, -(-len(values) * 99 // 100) - 1)]
        print(
            f"  {kind:8} n={len(values):5}  median {statistics.median(values) * 1000:7.1f} ms"
            f"  p99 {p99 * 1000:7.1f} ms  max {values[-1] * 1000:7.1f} ms"
            f"  (limit 100 ms: {'ok' if values[-1] <= 0.1 else 'EXCEEDED'})"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
