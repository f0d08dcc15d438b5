"""The report over a year: `summary_report` (what `webcare-monitor report` runs) against raw SQL.

Run: .venv/bin/python -m tests.bench.bench_report_year [--items N] [--rounds K]

Fills a SQLite store (the service's schema, written with sqlite3) with N items (default
274,000) over the 365 days before NOW, 20 sources of 5 brands, each item with its message and,
when answered, its reply. Then, for windows of 30, 90, 180 and 365 days, best of K rounds
(default 3):

- `summary_report`: the CLI's summary since issue 17 part 6 (one query, tallied in Python);
- `report_items` + `build_report`: the CLI's summary before (an object per item);
- raw SQL A: the query `report_items` runs, fetched with sqlite3 (issue 17's "0.8 s");
- raw SQL B: the same figures from SQL alone with sqlite3: counts with SUM(CASE ...) and
  nearest-rank percentiles with ROW_NUMBER, for all four row kinds (as
  tests/integration/test_report_sql.py computes them);
- raw SQL C: the one query `summary_report` runs, fetched with sqlite3 (its floor).

Prints seconds, microseconds per item and the ratios; checks that both paths give equal rows.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from monitor.domain import ItemState, Period
from monitor.report import build_report
from monitor.store import Store, create_engine, upgrade
from monitor.store.reports import report_items, summary_report
from monitor.store.tables import items, messages

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SOURCES = {f"src-{n}": f"brand-{n % 5}" for n in range(20)}
WINDOWS = (30, 90, 180, 365)


def sql_time(moment: datetime) -> str:
    """How UTCDateTime stores an instant in SQLite."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def fill(path: Path, count: int, rng: random.Random) -> None:
    """Messages and items as the pipeline would have stored them."""
    conn = sqlite3.connect(path)
    message_rows: list[tuple[Any, ...]] = []
    item_rows: list[tuple[Any, ...]] = []
    names = list(SOURCES)
    for k in range(count):
        source = names[k % len(names)]
        created = NOW - timedelta(seconds=rng.randrange(1, 365 * 86400))
        period = Period.OFFICE_HOURS if 8 <= created.hour < 17 else Period.AFTER_HOURS
        target = 3600.0 if period is Period.OFFICE_HOURS else 4 * 3600.0
        item_id, reply_id = 2 * k + 1, 2 * k + 2
        message_rows.append(message(item_id, source, k, created, brand=False))
        roll = rng.random()
        if (NOW - created < timedelta(hours=6) and roll < 0.5) or roll < 0.03:
            state = rng.choice(
                [ItemState.OPEN, ItemState.WARNING, ItemState.BREACHED, ItemState.DISMISSED]
            )
            reply = None
        else:
            wall = float(rng.randrange(30, 6 * 3600))
            sla = min(wall, float(rng.randrange(30, 2 * 3600)))
            state = ItemState.ANSWERED_IN_TIME if sla <= target else ItemState.ANSWERED_LATE
            reply = (created + timedelta(seconds=wall), wall, sla, f"Moderator {k % 7}")
            message_rows.append(message(reply_id, source, k, reply[0], brand=True))
        item_rows.append(
            (
                item_id,
                source,
                SOURCES[source],
                f"t{k}",
                sql_time(created),
                period.value,
                created.weekday() >= 5,
                None,
                state.value,
                "hidden" if state is ItemState.DISMISSED else None,
                target,
                sql_time(created + timedelta(seconds=target / 2)),
                sql_time(created + timedelta(seconds=target)),
                reply_id if reply else None,
                reply[3] if reply else None,
                sql_time(reply[0]) if reply else None,
                reply[1] if reply else None,
                reply[2] if reply else None,
            )
        )
    for table, rows in ((messages, message_rows), (items, item_rows)):
        columns = ", ".join(c.name for c in table.c)
        marks = ", ".join("?" * len(table.c))
        conn.executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)
    conn.commit()
    conn.close()


def message(message_id: int, source: str, k: int, at: datetime, *, brand: bool) -> tuple[Any, ...]:
    """A messages row (id, source, platform_id, ..., edited)."""
    pid = f"{k}_{'r' if brand else 'c'}"
    return (
        message_id,
        source,
        pid,
        f"t{k}",
        None if not brand else f"{k}_c",
        int(brand),
        "page" if brand else f"u{k % 5000}",
        "Page" if brand else f"Klant {k % 5000}",
        "Dank je!" if brand else "Waar blijft mijn fiets?",
        f"https://www.facebook.com/{pid}",
        sql_time(at),
        sql_time(at),
        sql_time(at),
        brand,
        False,
        False,
        False,
    )


RAW_A = """
    SELECT i.message_id, i.source, i.brand, i.created_at, i.period, i.weekend, i.holiday,
           i.state, i.warning_at, i.due_at, i.dismissed_reason,
           COALESCE(i.responder, r.author_name), i.responded_at, i.response_seconds,
           i.response_sla_seconds, m.permalink, m.author_name
    FROM items i JOIN messages m ON m.id = i.message_id
    LEFT OUTER JOIN messages r ON r.id = i.response_message_id
    WHERE i.created_at >= ? AND i.created_at < ?
    ORDER BY i.created_at, i.message_id
"""
RAW_C = """
    SELECT source, brand, period, state,
           CASE WHEN state IN ('open', 'warning', 'breached') THEN due_at END,
           response_seconds, response_sla_seconds
    FROM items WHERE created_at >= ? AND created_at < ?
"""
GROUPS = (("source", "brand", "period"), ("source", "brand"), ("brand",), ())


def raw_b(conn: sqlite3.Connection, since: str, until: str, as_of: str) -> int:
    """Every figure of every row kind from SQL alone; returns the number of result rows."""
    found = 0
    window = "created_at >= :since AND created_at < :until"
    params = {"since": since, "until": until, "as_of": as_of}
    for group in GROUPS:
        keys = ", ".join(group) or "'*'"
        group_by = f"GROUP BY {', '.join(group)}" if group else ""
        found += len(
            conn.execute(
                f"""SELECT {keys}, COUNT(*),
                    SUM(CASE WHEN state = 'dismissed' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN state = 'answered_in_time' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN state = 'answered_late' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN state IN ('open', 'warning', 'breached')
                             AND due_at <= :as_of THEN 1 ELSE 0 END),
                    SUM(CASE WHEN state IN ('open', 'warning', 'breached')
                             AND due_at > :as_of THEN 1 ELSE 0 END),
                    SUM(CASE WHEN period = 'after_hours' THEN 1 ELSE 0 END)
                FROM items WHERE {window} {group_by}""",
                params,
            ).fetchall()
        )
        partition = f"PARTITION BY {', '.join(group)}" if group else ""
        for column in ("response_seconds", "response_sla_seconds"):
            found += len(
                conn.execute(
                    f"""WITH ranked AS (
                        SELECT {keys}, {column} AS v,
                               ROW_NUMBER() OVER ({partition} ORDER BY {column}) AS rn,
                               COUNT(*) OVER ({partition}) AS n
                        FROM items WHERE {window}
                          AND state IN ('answered_in_time', 'answered_late')
                          AND {column} IS NOT NULL)
                    SELECT {keys}, MAX(CASE WHEN rn = (n + 1) / 2 THEN v END),
                           MAX(CASE WHEN rn = (9 * n + 9) / 10 THEN v END)
                    FROM ranked {group_by}""",
                    params,
                ).fetchall()
            )
    return found


def fetch(conn: sqlite3.Connection, sql: str, window: tuple[str, str]) -> list[Any]:
    return conn.execute(sql, window).fetchall()


def best(rounds: int, run: Callable[[], Any]) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=274_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "year.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        asyncio.run(upgrade(engine))
        fill(path, args.items, random.Random(1))
        store = Store(engine)
        raw = sqlite3.connect(path)
        loop = asyncio.new_event_loop()
        print(f"{args.items:,} items over 365 days, 20 sources; best of {args.rounds}")
        for days in WINDOWS:
            since, until = NOW - timedelta(days=days), NOW + timedelta(seconds=1)
            count = raw.execute(
                "SELECT COUNT(*) FROM items WHERE created_at >= ? AND created_at < ?",
                (sql_time(since), sql_time(until)),
            ).fetchone()[0]

            def after(since: datetime = since, until: datetime = until) -> Any:
                return loop.run_until_complete(
                    summary_report(
                        store, since=since, until=until, as_of=lambda: NOW, sources=SOURCES
                    )
                )

            def before(since: datetime = since, until: datetime = until) -> Any:
                found = loop.run_until_complete(report_items(store, since=since, until=until))
                return build_report(found, since=since, until=until, as_of=NOW, sources=SOURCES)

            assert after() == before(), "the two paths disagree"
            window = (sql_time(since), sql_time(until))
            after_s = best(args.rounds, after)
            before_s = best(args.rounds, before)
            raw_a = best(args.rounds, partial(fetch, raw, RAW_A, window))
            raw_b_s = best(args.rounds, partial(raw_b, raw, *window, sql_time(NOW)))
            raw_c = best(args.rounds, partial(fetch, raw, RAW_C, window))
            print(
                f"{days:>3} days, {count:>7,} items: summary_report {after_s:.2f} s"
                f" ({after_s / count * 1e6:.1f} µs/item), before {before_s:.2f} s,"
                f" raw SQL A {raw_a:.2f} s, B {raw_b_s:.2f} s, C {raw_c:.2f} s\n"
                f"    summary_report / A {after_s / raw_a:.2f}x, / B {after_s / raw_b_s:.2f}x,"
                f" / C {after_s / raw_c:.2f}x; before / A {before_s / raw_a:.2f}x"
            )
        loop.run_until_complete(engine.dispose())
        loop.close()
        raw.close()


if __name__ == "__main__":
    main()
