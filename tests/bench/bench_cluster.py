"""1,000 Facebook pages and 100 phpBB forums on 1 and on 3 instances (issue 17).

Real `webcare-monitor run` processes on one throwaway PostgreSQL (tests/conftest.py's server,
or $WEBCARE_TEST_POSTGRES_URL), each run on a fresh database, against the fakes served from
this process: the fake Graph API (every page on one agency token, so each instance polls its
pages as one group in batch POSTs) and one fake phpBB board with one forum per source (an
idle forum costs one conditional feed request, answered 304). Realistic idle state: every
page has three answered posts 20-30 days old, every forum two answered topics 3-5 days old,
and a share of both (`--active-share`, 10%) has one recent unanswered question, so an active
thread re-read each poll.

For each instance count: start the instances, wait for the backfill (every source polled once)
and, with several, for the even spread; let one cycle pass, then measure `--cycles` idle poll
intervals: the cycle time (per instance, from the first poll start to the last poll end of its
pages' burst, from its `poll` log lines), Graph calls per page (at the fake: calls over feed
reads), CPU seconds per instance per interval and RSS (/proc), the fake's and PostgreSQL's CPU;
then `/metrics` at each instance, as Prometheus asks for it (OpenMetrics, gzip): a fresh render
and a cached answer, with the body's size and samples. Prints a table and the 3-vs-1 ratios.
Reports figures; asserts nothing about time.

    .venv/bin/python -m tests.bench.bench_cluster [--pages N] [--forums M] [--cycles K]
        [--interval SECONDS] [--instances 1,3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import itertools
import json
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.engine import make_url

from monitor.simulator.graph_api import FakeGraphApi
from monitor.simulator.phpbb import FakePhpbbBoard
from monitor.store import create_engine, upgrade
from tests.conftest import POSTGRES_URL_ENV, PostgresServer, _LocalServer, find_pg_bindir
from tests.e2e.test_restart import free_port

TOKEN = "EAAG-bench-cluster-agency-token"
CONSUMER = ("8001", "Consumer")
MOD = "Acme_Support"
# What Prometheus sends (2.x): OpenMetrics preferred, gzip.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TICK = os.sysconf("SC_CLK_TCK")


def page_id(number: int) -> str:
    return str(530_000_000 + number)


# --- the fakes ------------------------------------------------------------------------------


class TimedGraph(FakeGraphApi):
    """The fake Graph API, noting when each call came and for which page."""

    def __init__(self) -> None:
        super().__init__(access_token=TOKEN)
        self.timed: list[tuple[float, str, str]] = []  # (monotonic, object id, edge)

    def _count(self, call: Any) -> None:
        super()._count(call)
        segments = call.segments
        self.timed.append(
            (
                time.monotonic(),
                segments[0] if segments else "",
                segments[1] if len(segments) > 1 else "",
            )
        )


def script_pages(graph: FakeGraphApi, pages: int, active_every: int | None, now: datetime) -> None:
    """Three answered posts per page (30, 25, 20 days old); every `active_every`-th page also
    has a question of 5 minutes ago on its oldest post (one active thread, read every poll)."""
    for number in range(pages):
        page = graph.add_page(page_id(number), f"Brand {number}")
        posts = []
        for age in (30, 25, 20):
            at = now - timedelta(days=age)
            post = graph.add_post(created_time=at, message="deal", page_id=page)
            question = graph.add_comment(
                post_id=post, created_time=at + timedelta(hours=1), message="?", author=CONSUMER
            )
            graph.add_comment(
                post_id=post,
                created_time=at + timedelta(hours=1, minutes=5),
                message="!",
                parent_id=question,
            )
            posts.append(post)
        if active_every and number % active_every == 0:
            graph.add_comment(
                post_id=posts[0],
                created_time=now - timedelta(minutes=5),
                message="still there?",
                author=CONSUMER,
            )


def script_forums(
    board: FakePhpbbBoard, forums: int, active_every: int | None, now: datetime
) -> None:
    """Two answered topics per forum (25 and 20 days old, past active_days as the pages' posts);
    every `active_every`-th forum also has an unanswered topic of 5 minutes ago."""
    for number in range(forums):
        forum = board.add_forum(number + 1, f"Support {number}")
        for age in (25, 20):
            at = now - timedelta(days=age)
            topic, _ = board.add_topic(
                forum_id=forum, title=f"Question {age}", author="Ann", created_at=at, text="?"
            )
            board.add_post(
                topic_id=topic, author=MOD, created_at=at + timedelta(minutes=20), text="!"
            )
        if active_every and number % active_every == 0:
            board.add_topic(
                forum_id=forum,
                title="Still waiting",
                author="Bob",
                created_at=now - timedelta(minutes=5),
                text="hello?",
            )


def write_config(
    path: Path,
    *,
    graph_url: str,
    board_url: str,
    database_url: str,
    pages: int,
    forums: int,
    interval: float,
) -> Path:
    out = [
        f'database_url = "{database_url}"',
        "[log]",
        'format = "json"',
        'level = "info"',
        "[policies.default]",
        'office_hours = "4h"',  # nothing warns or breaches during the bench
        'after_hours = "4h"',
        'coverage = "always"',
        "[roster]",  # someone always on duty (no "roster gap" warnings)
        'timezone = "Europe/Amsterdam"',
        "[[roster.shifts]]",
        'when = "mon-sun 00:00-12:00"',
        'student = "sam"',
        "[[roster.shifts]]",
        'when = "mon-sun 12:00-00:00"',
        'student = "sam"',
    ]
    for number in range(pages):
        out += [
            "[[sources]]",
            'type = "facebook_page"',
            f'name = "page-{number:04d}"',
            f'brand = "brand-{number // 20:03d}"',
            f'page_id = "{page_id(number)}"',
            f'access_token = "{TOKEN}"',
            f'api_base_url = "{graph_url}"',
            f'poll_interval = "{interval}s"',
            "backfill_days = 60",
            'calendar = "always"',
        ]
    for number in range(forums):
        out += [
            "[[sources]]",
            'type = "phpbb_atom"',
            f'name = "forum-{number:03d}"',
            f'brand = "brand-{number // 2:03d}"',
            f'base_url = "{board_url}"',
            f'moderators = ["{MOD.lower()}"]',
            f"forums = [{number + 1}]",
            "backfill_days = 60",
            f'poll_interval = "{interval}s"',
            'calendar = "always"',
        ]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


# --- processes ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def postgres_cpu(postmaster: int | None) -> float | None:
    """CPU of the postmaster, its reaped children and its live children (the backends)."""
    if postmaster is None:
        return None
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15]) / TICK  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            child = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(child[1]) == postmaster:
                total += (int(child[11]) + int(child[12])) / TICK
    return total


class Instances:
    """`webcare-monitor run` processes on one config, each with its name, port and log."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.ports: dict[str, int] = {}

    async def start(self, name: str) -> None:
        self.ports[name] = free_port()
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor", "run", "-c", str(self.config),
                "--instance", name, "--port", str(self.ports[name]),
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    async def stop_all(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()

    def lines(self, name: str) -> list[dict[str, Any]]:
        found = []
        for raw in (self.logs / f"{name}.log").read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                if isinstance(line, dict):
                    found.append(line)
        return found


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Scrape:
    seconds: float
    gzip_bytes: int
    raw_bytes: int
    samples: int
    instance_sources: float | None


@dataclass
class Polls:
    """An instance's polls logged in the window."""

    cycle_seconds: list[float] = field(default_factory=list)  # per cycle: first start to last end
    pages_per_cycle: list[int] = field(default_factory=list)
    groups_per_cycle: list[int] = field(default_factory=list)  # separate starts within a cycle
    page_seconds: list[float] = field(default_factory=list)  # each page poll's duration
    forum_seconds: list[float] = field(default_factory=list)


@dataclass
class InstanceFigures:
    name: str
    cpu_per_cycle: float = 0.0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    held: int = 0
    polls: Polls = field(default_factory=Polls)
    fresh: list[Scrape] = field(default_factory=list)
    cached: list[Scrape] = field(default_factory=list)
    log_levels: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    lease_changes: int = 0
    backfills: int = 0  # sources this instance backfilled (a first poll of its own)
    # (seconds after the start, sources held, gained, lost, leader) at each change of leases
    changes: list[tuple[float, int, int, int, bool]] = field(default_factory=list)


@dataclass
class RunFigures:
    instances: int
    sources: int
    backfill_seconds: float = 0.0
    spread_seconds: float | None = None
    window_seconds: float = 0.0
    cycles: float = 0.0
    graph_calls: int = 0
    feed_reads: int = 0
    http_requests: int = 0
    forum_requests: int = 0
    forum_304: int = 0
    forum_feed_reads: int = 0
    fake_cpu_per_cycle: float = 0.0
    postgres_cpu_per_cycle: float | None = None
    load: str = ""
    per_instance: list[InstanceFigures] = field(default_factory=list)

    @property
    def calls_per_page(self) -> float:
        return self.graph_calls / self.feed_reads if self.feed_reads else float("nan")


async def scrape(session: aiohttp.ClientSession, port: int) -> Scrape:
    """One /metrics as Prometheus asks for it; the time to the last byte."""
    started = time.perf_counter()
    async with session.get(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
    ) as response:
        body = await response.read()
        seconds = time.perf_counter() - started
        zipped = response.headers.get("Content-Encoding") == "gzip"
    raw = gzip.decompress(body) if zipped else body
    samples = 0
    held = None
    for line in raw.decode().splitlines():
        if line and not line.startswith("#"):
            samples += 1
            if line.startswith("webcare_instance_sources{"):
                held = float(line.rsplit(" ", 1)[1])
    return Scrape(seconds, len(body), len(raw), samples, held)


async def measure_metrics(port: int, rounds: int) -> tuple[list[Scrape], list[Scrape]]:
    """(fresh renders, cached answers). A rendering is served for 1 s, and after two scrapes a
    slow one is redone just before the next expected scrape (monitor/web/exposition.py). So:
    scrape, wait 6 s, scrape (plans one ahead, due in about 5.5 s), wait 1.5 s, scrape — the
    cache is 1.5 s old and the planned one not started: a fresh render — and at once again —
    the cached answer."""
    fresh, cached = [], []
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        await scrape(session, port)
        for _ in range(rounds):
            await asyncio.sleep(6.0)
            await scrape(session, port)
            await asyncio.sleep(1.5)
            fresh.append(await scrape(session, port))
            cached.append(await scrape(session, port))
    return fresh, cached


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def read_polls(lines: list[dict[str, Any]], start: float, end: float, interval: float) -> Polls:
    """The `poll` lines (one per successful poll: its end and duration) between start and end
    (wall seconds). A cycle is a run of page polls without a pause of a third of the interval;
    within it, polls started more than a second apart were started as separate groups."""
    found = Polls()
    polls = []
    for line in lines:
        if line.get("event") != "poll" or "duration_s" not in line:
            continue
        ended = parse_time(line["timestamp"])
        if not start <= ended <= end:
            continue
        took = float(line["duration_s"])
        if str(line.get("source", "")).startswith("page-"):
            polls.append((ended - took, ended))
            found.page_seconds.append(took)
        else:
            found.forum_seconds.append(took)
    polls.sort(key=lambda p: p[1])
    cycles: list[list[tuple[float, float]]] = []
    for poll in polls:
        if cycles and poll[1] - cycles[-1][-1][1] < interval / 3:
            cycles[-1].append(poll)
        else:
            cycles.append([poll])
    for cycle in cycles:
        starts = sorted(s for s, _ in cycle)
        found.cycle_seconds.append(max(e for _, e in cycle) - starts[0])
        found.pages_per_cycle.append(len(cycle))
        found.groups_per_cycle.append(1 + sum(b - a > 1.0 for a, b in itertools.pairwise(starts)))
    return found


async def until(what: str, seconds: float, check: Any, instances: Instances) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await check():
            return time.monotonic() - started
        dead = [n for n, p in instances.processes.items() if p.returncode is not None]
        if dead:
            raise RuntimeError(f"instance(s) {dead} exited while waiting for {what}")
        await asyncio.sleep(1.0)
    raise RuntimeError(f"never happened within {seconds:.0f} s: {what}")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def run_once(
    count: int, args: argparse.Namespace, pg: PostgresServer, postmaster: int | None, work: Path
) -> RunFigures:
    names = [chr(ord("a") + n) for n in range(count)]
    sources = args.pages + args.forums
    figures = RunFigures(instances=count, sources=sources)
    active_every = round(1 / args.active_share) if args.active_share > 0 else None
    now = datetime.now(UTC)
    graph = TimedGraph()
    board = FakePhpbbBoard()
    script_pages(graph, args.pages, active_every, now)
    script_forums(board, args.forums, active_every, now)
    await graph.start()
    await board.start()
    database = pg.create_database()
    url = pg.database_url(database)
    logs = work / f"{count}-instances"
    logs.mkdir(parents=True, exist_ok=True)
    config = write_config(
        logs / "config.toml", graph_url=graph.base_url, board_url=board.base_url,
        database_url=url, pages=args.pages, forums=args.forums, interval=args.interval,
    )  # fmt: skip
    engine = create_engine(url)
    await upgrade(engine)
    instances = Instances(config, logs)

    async def polled() -> bool:
        async with engine.connect() as conn:
            done = await conn.scalar(
                text("SELECT count(*) FROM sources WHERE last_success_at IS NOT NULL")
            )
        return bool(done == sources)

    async def holdings() -> dict[str, int]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT holder, count(*) AS n FROM cluster_leases WHERE key LIKE 'source:%'"
                    " AND holder IS NOT NULL AND expires_at > now() GROUP BY holder"
                )
            )
            return {row.holder: row.n for row in rows}

    async def spread() -> bool:
        # Shared out per platform (pages, forums), so each instance's count is within one of
        # the even split per platform: at most 2 apart overall.
        held = await holdings()
        counts = list(held.values())
        return set(held) == set(names) and sum(counts) == sources and max(counts) - min(counts) <= 2

    try:
        started = time.monotonic()
        started_wall = time.time()
        for name in names:
            await instances.start(name)
        print(f"[{count} instance(s)] started; waiting for the backfill ...", flush=True)
        figures.backfill_seconds = await until("the backfill", args.timeout, polled, instances)
        print(f"[{count}] backfill done in {figures.backfill_seconds:.0f} s", flush=True)
        if count > 1:
            await until("the even spread", args.timeout, spread, instances)
            figures.spread_seconds = time.monotonic() - started
        # One whole cycle after the backfill (and the handovers), then the idle window.
        await asyncio.sleep(args.interval * 1.2)
        held = await holdings()
        owner = {}  # page id -> instance
        async with engine.connect() as conn:
            for row in await conn.execute(
                text("SELECT key, holder FROM cluster_leases WHERE key LIKE 'source:page-%'")
            ):
                owner[page_id(int(row.key.removeprefix("source:page-")))] = row.holder
        print(f"[{count}] measuring {args.cycles} idle cycles of {args.interval:.0f} s "
              f"(load {loadavg()}) ...", flush=True)  # fmt: skip
        calls_from, requests_from = len(graph.timed), graph.http_requests
        seen_requests = len(graph.requests)
        board_from = len(board.requests)
        cpu_from = {n: cpu_seconds(instances.pid(n)) for n in names}
        fake_from = resource.getrusage(resource.RUSAGE_SELF)
        pg_from = postgres_cpu(postmaster)
        wall_from, mono_from = time.time(), time.monotonic()
        await asyncio.sleep(args.cycles * args.interval)
        wall_to, mono_to = time.time(), time.monotonic()
        cpu_to = {n: cpu_seconds(instances.pid(n)) for n in names}
        fake_to = resource.getrusage(resource.RUSAGE_SELF)
        pg_to = postgres_cpu(postmaster)
        figures.load = loadavg()
        figures.window_seconds = mono_to - mono_from
        figures.cycles = figures.window_seconds / args.interval
        window = graph.timed[calls_from:]
        page_calls = [c for c in window if c[0] <= mono_to and c[1][:1].isdigit()]
        figures.graph_calls = len(page_calls)
        figures.feed_reads = sum(1 for c in page_calls if c[2] == "feed")
        token_requests = sum("debug_token" in r.path for r in graph.requests[seen_requests:])
        figures.http_requests = graph.http_requests - requests_from - token_requests
        forum_requests = board.requests[board_from:]
        figures.forum_requests = len(forum_requests)
        figures.forum_304 = sum(r.status == 304 for r in forum_requests)
        figures.forum_feed_reads = sum("/feed/forum/" in r.path for r in forum_requests)
        fake_cpu = (fake_to.ru_utime + fake_to.ru_stime) - (fake_from.ru_utime + fake_from.ru_stime)
        figures.fake_cpu_per_cycle = fake_cpu / figures.cycles
        if pg_from is not None and pg_to is not None:
            figures.postgres_cpu_per_cycle = (pg_to - pg_from) / figures.cycles
        for name in names:
            mem = memory_kib(instances.pid(name))
            one = InstanceFigures(
                name=name,
                cpu_per_cycle=(cpu_to[name] - cpu_from[name]) / figures.cycles,
                rss_mib=mem["VmRSS"] / 1024,
                peak_rss_mib=mem["VmHWM"] / 1024,
                held=held.get(name, 0),
            )
            one.polls = read_polls(instances.lines(name), wall_from, wall_to, args.interval)
            figures.per_instance.append(one)
        # Only whole cycles (a window edge cuts one short).
        for one in figures.per_instance:
            pages_held = sum(1 for o in owner.values() if o == one.name)
            p = one.polls
            whole = [n for n, pages in enumerate(p.pages_per_cycle) if pages >= 0.9 * pages_held]
            p.cycle_seconds = [p.cycle_seconds[n] for n in whole]
            p.pages_per_cycle = [p.pages_per_cycle[n] for n in whole]
            p.groups_per_cycle = [p.groups_per_cycle[n] for n in whole]
        print(f"[{count}] /metrics at each instance (load {loadavg()}) ...", flush=True)
        for one in figures.per_instance:
            one.fresh, one.cached = await measure_metrics(instances.ports[one.name], args.scrapes)
    finally:
        await instances.stop_all()
        await engine.dispose()
        await graph.stop()
        await board.stop()
        pg.drop_database(database)
    for one in figures.per_instance:
        for line in instances.lines(one.name):
            level = str(line.get("level", "?"))
            one.log_levels[level] += 1
            if level in ("warning", "error", "critical"):
                one.problems[f"{level}: {line.get('event')}"] += 1
            if line.get("event") == "leases changed":
                one.lease_changes += 1
                one.changes.append(
                    (
                        parse_time(line["timestamp"]) - started_wall,
                        int(line.get("sources", 0)),
                        len(line.get("gained", [])),
                        len(line.get("lost", [])),
                        bool(line.get("leader")),
                    )
                )
            if line.get("event") == "backfill done":
                one.backfills += 1
    return figures


# --- the report -----------------------------------------------------------------------------


nan = float("nan")


def med(values: list[float]) -> float:
    return statistics.median(values) if values else nan


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))] if values else nan


def row(label: str, values: list[str]) -> str:
    return f"| {label} | " + " | ".join(values) + " |"


def report(runs: list[RunFigures], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.pages} Facebook pages (one token) + {args.forums} phpBB forums, poll interval"
        f" {args.interval:.0f} s, {args.cycles} idle cycles measured, {args.active_share:.0%}"
        " with an active thread"
    )
    print()
    header = [f"{r.instances} instance{'s' if r.instances > 1 else ''}" for r in runs]
    lines = [row("", header), row("---", ["---"] * len(runs))]

    def each(label: str, fn: Any) -> None:
        lines.append(row(label, [fn(r) for r in runs]))

    def per(fn: Any, fmt: str) -> Any:
        return lambda r: " / ".join(format(fn(i), fmt) for i in r.per_instance)

    each("backfill (every source polled once)", lambda r: f"{r.backfill_seconds:.0f} s")
    each(
        "start to even spread",
        lambda r: "—" if r.spread_seconds is None else f"{r.spread_seconds:.0f} s",
    )
    each("sources held", per(lambda i: i.held, "d"))
    each(
        "sources backfilled, per instance (sum)",
        lambda r: (
            " / ".join(str(i.backfills) for i in r.per_instance)
            + f" ({sum(i.backfills for i in r.per_instance)})"
        ),
    )
    each(
        "page cycle time, median (max) per instance",
        lambda r: " / ".join(
            f"{med(i.polls.cycle_seconds):.1f} ({max(i.polls.cycle_seconds, default=nan):.1f}) s"
            for i in r.per_instance
        ),
    )
    each(
        "poll groups started per cycle, median",
        per(lambda i: med([float(g) for g in i.polls.groups_per_cycle]), ".0f"),
    )
    each(
        "page poll duration, median (p95) per instance",
        lambda r: " / ".join(
            f"{med(i.polls.page_seconds):.2f} ({p95(i.polls.page_seconds):.2f}) s"
            for i in r.per_instance
        ),
    )
    each(
        "forum poll, median ms per instance",
        lambda r: " / ".join(
            f"{med(i.polls.forum_seconds) * 1000:.0f}" if i.polls.forum_seconds else "—"
            for i in r.per_instance
        ),
    )
    each(
        "Graph calls per page per idle cycle",
        lambda r: f"{r.calls_per_page:.3f} ({r.graph_calls} / {r.feed_reads})",
    )
    each(
        "pages per HTTP request",
        lambda r: f"{r.feed_reads / r.http_requests:.1f}" if r.http_requests else "—",
    )
    each(
        "forum requests per forum poll (304s)",
        lambda r: (
            f"{r.forum_requests / r.forum_feed_reads:.2f} ({r.forum_304 / r.forum_requests:.0%})"
            if r.forum_feed_reads
            else "—"
        ),
    )
    each("CPU s per instance per cycle", per(lambda i: i.cpu_per_cycle, ".2f"))
    each(
        "CPU s all instances per cycle",
        lambda r: f"{sum(i.cpu_per_cycle for i in r.per_instance):.2f}",
    )
    each(
        "CPU s PostgreSQL / fakes per cycle",
        lambda r: (
            (f"{r.postgres_cpu_per_cycle:.2f}" if r.postgres_cpu_per_cycle is not None else "?")
            + f" / {r.fake_cpu_per_cycle:.2f}"
        ),
    )
    each(
        "RSS MiB per instance (peak)",
        lambda r: " / ".join(f"{i.rss_mib:.0f} ({i.peak_rss_mib:.0f})" for i in r.per_instance),
    )
    each(
        "/metrics fresh render, median ms",
        per(lambda i: med([s.seconds for s in i.fresh]) * 1000, ".0f"),
    )
    each(
        "/metrics cached answer, median ms",
        per(lambda i: med([s.seconds for s in i.cached]) * 1000, ".1f"),
    )
    each("/metrics samples", per(lambda i: i.fresh[-1].samples if i.fresh else 0, ",d"))
    each(
        "/metrics KiB raw / gzip",
        lambda r: " · ".join(
            f"{i.fresh[-1].raw_bytes / 1024:,.0f} / {i.fresh[-1].gzip_bytes / 1024:,.0f}"
            for i in r.per_instance
            if i.fresh
        ),
    )
    each(
        "log lines warning / error",
        lambda r: " · ".join(
            f"{i.log_levels['warning']} / {i.log_levels['error']}" for i in r.per_instance
        ),
    )
    each("'leases changed' log lines", per(lambda i: i.lease_changes, "d"))
    each("load average at the window's end", lambda r: r.load)
    print("\n".join(lines))

    if len(runs) >= 2:
        one, many = runs[0], runs[-1]
        base = one.per_instance[0]
        n = many.instances
        mean_cpu = statistics.mean(i.cpu_per_cycle for i in many.per_instance)
        total_cpu = sum(i.cpu_per_cycle for i in many.per_instance)
        cycle_1 = med(base.polls.cycle_seconds)
        cycle_n = max(med(i.polls.cycle_seconds) for i in many.per_instance)
        poll_1 = med(base.polls.page_seconds)
        poll_n = med([s for i in many.per_instance for s in i.polls.page_seconds])
        fresh_1 = med([s.seconds for s in base.fresh])
        fresh_n = med([s.seconds for i in many.per_instance for s in i.fresh])
        rss_n = statistics.mean(i.rss_mib for i in many.per_instance)
        print()
        print(f"Ratios, {n} instances vs 1:")
        print(f"  CPU per instance per cycle: {mean_cpu / base.cpu_per_cycle:.2f}x"
              f" (ideal 1/{n} = {1 / n:.2f}); all instances together:"
              f" {total_cpu / base.cpu_per_cycle:.2f}x")  # fmt: skip
        print(f"  page cycle time (slowest instance's median): {cycle_n / cycle_1:.2f}x;"
              f" page poll duration (median): {poll_n / poll_1:.2f}x")  # fmt: skip
        print(f"  Graph calls per page per idle cycle: {one.calls_per_page:.3f} ->"
              f" {many.calls_per_page:.3f}")  # fmt: skip
        print(f"  /metrics fresh render: {fresh_n / fresh_1:.2f}x; RSS per instance:"
              f" {rss_n / base.rss_mib:.2f}x")  # fmt: skip
    for run in runs:
        if run.instances > 1:
            print(f"\nLease changes, {run.instances} instances (s after the start: sources held,"
                  " +gained, -lost, leader):")  # fmt: skip
            for i in run.per_instance:
                print(f"  {i.name}: " + "; ".join(
                    f"{at:.0f} s: {held} (+{gained} -{lost}){' L' if leader else ''}"
                    for at, held, gained, lost, leader in i.changes))  # fmt: skip
        for i in run.per_instance:
            if i.problems:
                print(f"\n{run.instances} instance(s), {i.name}: warnings/errors logged:")
                for what, times in i.problems.most_common(10):
                    print(f"  {times:5d}  {what}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--forums", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=3, help="idle cycles measured")
    parser.add_argument("--interval", type=float, default=30.0, help="poll_interval, seconds")
    parser.add_argument("--instances", default="1,3", help="instance counts to run, e.g. 1,3")
    parser.add_argument("--active-share", type=float, default=0.1)
    parser.add_argument("--scrapes", type=int, default=3, help="/metrics rounds per instance")
    parser.add_argument("--timeout", type=float, default=600.0, help="for backfill and spread")
    parser.add_argument("--keep", type=Path, help="keep the configs and instance logs here")
    args = parser.parse_args()
    counts = [int(c) for c in args.instances.split(",")]
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    external = os.environ.get(POSTGRES_URL_ENV)
    server = None
    postmaster = None
    if external:
        pg = PostgresServer(url=make_url(external), origin=POSTGRES_URL_ENV)
    else:
        bindir = find_pg_bindir()
        if bindir is None:
            sys.exit(f"no PostgreSQL server binaries; set {POSTGRES_URL_ENV}")
        server = _LocalServer(bindir)
        pg = PostgresServer(url=server.start(), origin=str(bindir))
        with contextlib.suppress(OSError, ValueError):
            postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    print(f"PostgreSQL: {pg.origin}; logs in {work}; load {loadavg()}", flush=True)
    try:
        runs = [await run_once(count, args, pg, postmaster, work) for count in counts]
    finally:
        if server is not None:
            server.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    report(runs, args)


if __name__ == "__main__":
    asyncio.run(main())
