"""Ingest cost: `handle_batch` against raw sqlite3 executemany of the same rows.

Run: .venv/bin/python -m tests.bench.bench_ingest [--messages N] [--rounds K] [--postgres]

Builds N messages (default 20,000) as polls return them: threads of a brand post with consumer
comments and brand replies, ten threads a batch, each thread complete. (a) stores every batch
through `handle_batch` into a fresh SQLite file; (b) inserts the very rows (a) stored, batch by
batch, one transaction each, with sqlite3 `executemany` into a second fresh file with the same
schema, indexes and pragmas. Prints messages/s for both and their ratio (issue 17's goal: (a)
at least 1/4 of (b)). Best of K interleaved rounds (default 3). `--postgres` also times (a) on
a throwaway PostgreSQL server (tests/conftest.py's). `--profile [tottime|cumulative]` prints
cProfile's top functions of (a), one round.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor.domain import Batch, Message, Period, SourceRef
from monitor.pipeline import SourceSettings, handle_batch
from monitor.sla.calendar import WeeklyCalendar, parse_hours
from monitor.sla.evaluate import SlaPolicy
from monitor.store import Store, create_engine, upgrade

REF = SourceRef(name="bench-fb", brand="bench", platform="facebook_page")
START = datetime(2026, 10, 1, tzinfo=UTC)
THREADS_PER_BATCH = 10
OFFICE = WeeklyCalendar(
    name="office",
    timezone=ZoneInfo("Europe/Amsterdam"),
    intervals=tuple(parse_hours("mon-fri 09:00-17:00")),
)
SETTINGS = SourceSettings(
    ref=REF,
    policy=SlaPolicy(
        office=OFFICE,
        coverage=OFFICE,
        targets={Period.OFFICE_HOURS: 3600.0, Period.AFTER_HOURS: 4 * 3600.0},
        warn_at=0.5,
        reply_match="thread",
    ),
    ignore_authors=frozenset(),
    active_days=14,
)


def thread(n: int, size: int, rng: random.Random) -> list[Message]:
    """A brand post and size - 1 comments: two in three from consumers, the rest replies."""
    at = START + timedelta(minutes=n * 7 + rng.randrange(7))
    post = f"{n}"
    made = [
        Message(
            platform_id=post,
            thread_id=post,
            parent_id=None,
            author_id="page",
            author_name="Bench Bikes",
            text="Nieuwe fietsen deze week!",
            created_at=at,
            seq=0,
            is_brand=True,
            permalink=f"https://www.facebook.com/{post}",
        )
    ]
    for k in range(1, size):
        at += timedelta(seconds=rng.randrange(30, 5400))
        brand = k % 3 == 0
        who = rng.randrange(5000)
        made.append(
            Message(
                platform_id=f"{post}_{k}",
                thread_id=post,
                parent_id=post if not brand else f"{post}_{k - 1}",
                author_id="page" if brand else f"u{who}",
                author_name="Bench Bikes" if brand else f"Klant {who}",
                text="Dank je, we kijken ernaar." if brand else "Wanneer is mijn fiets klaar?",
                created_at=at,
                seq=k,
                is_brand=brand,
                hidden=not brand and rng.random() < 0.02,
                permalink=f"https://www.facebook.com/{post}?comment_id={k}",
            )
        )
    return made


def batches(count: int, rng: random.Random) -> list[tuple[Batch, datetime]]:
    """About `count` messages in threads of 2-38, ten threads a batch, each with its poll time."""
    threads: list[list[Message]] = []
    total = 0
    while total < count:
        made = thread(len(threads), min(rng.randrange(2, 39), count - total + 1), rng)
        threads.append(made)
        total += len(made)
    result = []
    for first in range(0, len(threads), THREADS_PER_BATCH):
        group = threads[first : first + THREADS_PER_BATCH]
        messages = tuple(m for t in group for m in t)
        complete = {t[0].thread_id: frozenset(m.platform_id for m in t) for t in group}
        polled = max(m.created_at for m in messages) + timedelta(minutes=1)
        batch = Batch(
            messages=messages, cursor={"since": polled.isoformat()}, complete_threads=complete
        )
        result.append((batch, polled))
    return result


async def ours(url: str, work: list[tuple[Batch, datetime]], profile: str | None) -> float:
    """Seconds to store every batch through handle_batch into a fresh database."""
    engine = create_engine(url)
    await upgrade(engine)
    store = Store(engine)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for batch, polled in work:
        await handle_batch(store, SETTINGS, batch, polled)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    await engine.dispose()
    if profiler and profile:
        pstats.Stats(profiler).sort_stats(profile).print_stats(40)
    return elapsed


def connect(path: Path) -> sqlite3.Connection:
    """A sqlite3 connection with the service's pragmas, transactions by hand."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "busy_timeout=30000",
        "synchronous=NORMAL",
        "foreign_keys=ON",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def raw(stored: Path, empty: Path, work: list[tuple[Batch, datetime]]) -> float:
    """Seconds to insert the rows `stored` holds, batch by batch, with executemany."""
    source = connect(stored)
    message_cols = [r[1] for r in source.execute("PRAGMA table_info(messages)")]
    item_cols = [r[1] for r in source.execute("PRAGMA table_info(items)")]
    messages = {r[2]: r for r in source.execute("SELECT * FROM messages ORDER BY id")}
    items = {r[0]: r for r in source.execute("SELECT * FROM items")}
    source_row = source.execute("SELECT * FROM sources").fetchone()
    source.close()
    per_batch = []
    for batch, polled in work:
        rows = [messages[m.platform_id] for m in batch.messages]
        per_batch.append((rows, [items[r[0]] for r in rows if r[0] in items], polled))
    conn = connect(empty)
    insert_messages = (
        f"INSERT INTO messages ({', '.join(message_cols)})"
        f" VALUES ({', '.join('?' * len(message_cols))})"
    )
    insert_items = (
        f"INSERT INTO items ({', '.join(item_cols)}) VALUES ({', '.join('?' * len(item_cols))})"
    )
    started = time.perf_counter()
    conn.execute("INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?)", source_row)
    for message_rows, item_rows, polled in per_batch:
        conn.execute("BEGIN")
        conn.executemany(insert_messages, message_rows)
        conn.executemany(insert_items, item_rows)
        conn.execute(
            "UPDATE sources SET cursor = ?, last_success_at = ? WHERE name = ?",
            ('{"since": "x"}', polled.replace(tzinfo=None).isoformat(" "), REF.name),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def one_round(work: list[tuple[Batch, datetime]], profile: str | None) -> tuple[float, float, int]:
    """(handle_batch seconds, raw seconds, items stored), each into a fresh SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        ours_db, raw_db = Path(tmp) / "ours.db", Path(tmp) / "raw.db"
        ours_s = asyncio.run(ours(f"sqlite+aiosqlite:///{ours_db}", work, profile))
        engine = create_engine(f"sqlite+aiosqlite:///{raw_db}")
        asyncio.run(upgrade(engine))
        asyncio.run(engine.dispose())
        raw_s = raw(ours_db, raw_db, work)
        items = sqlite3.connect(ours_db).execute("SELECT COUNT(*) FROM items").fetchone()[0]
    return ours_s, raw_s, items


def on_postgres(work: list[tuple[Batch, datetime]]) -> float:
    """handle_batch seconds into a fresh database on a throwaway PostgreSQL server."""
    from tests.conftest import PostgresServer, _LocalServer, find_pg_bindir

    bindir = find_pg_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL server binaries under /usr/lib/postgresql")
    server = _LocalServer(bindir)
    try:
        postgres = PostgresServer(url=server.start(), origin=str(bindir))
        url = postgres.database_url(postgres.create_database())
        return asyncio.run(ours(url, work, None))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many, interleaved")
    parser.add_argument("--postgres", action="store_true", help="also handle_batch on PostgreSQL")
    parser.add_argument(
        "--profile", nargs="?", const="tottime", help="cProfile handle_batch, sorted by this"
    )
    args = parser.parse_args()
    work = batches(args.messages, random.Random(1))
    count = sum(len(b.messages) for b, _ in work)
    # Interleaved rounds, best of each: a busy machine slows both sides alike.
    rounds = [one_round(work, args.profile) for _ in range(1 if args.profile else args.rounds)]
    ours_s, raw_s = min(r[0] for r in rounds), min(r[1] for r in rounds)
    print(f"{count:,} messages ({rounds[0][2]:,} items) in {len(work):,} batches", end=", ")
    print(f"best of {len(rounds)}")
    print(f"handle_batch (SQLite): {ours_s:.2f} s, {count / ours_s:,.0f} messages/s")
    print(f"raw sqlite3 executemany: {raw_s:.2f} s, {count / raw_s:,.0f} messages/s")
    print(f"handle_batch / raw: 1/{ours_s / raw_s:.1f} ({raw_s / ours_s:.3f})")
    if args.postgres:
        pg_s = on_postgres(work)
        print(f"handle_batch (PostgreSQL, one round): {pg_s:.2f} s, {count / pg_s:,.0f} messages/s")


if __name__ == "__main__":
    main()
