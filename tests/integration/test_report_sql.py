"""Acceptance 5: the report on the demo's week equals hand-written SQL, on SQLite and PostgreSQL.

The store is filled the way the service fills it: the demo's fake Facebook page with a week of
history, the demo's config, `create_app` and one poll on a fake clock. The SQL below is written
from DESIGN.md section 2 on its own (COUNT/SUM with CASE, nearest rank by ROW_NUMBER), without
looking at monitor/report.py, so that the two really check each other.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import ApiToken, Config, load_config
from monitor.demo import PAGE_ID, PAGE_NAME, TOKEN, write_demo_config
from monitor.report import (
    ModeratorRow,
    ReportRow,
    build_moderator_report,
    build_report,
    parse_instant,
)
from monitor.simulator.graph_api import FakeGraphApi
from monitor.simulator.scenario import seed_history
from monitor.store.reports import report_items
from monitor.store.types import UTCDateTime
from monitor.web.api import add_api_routes
from monitor.web.keys import CLOCK, COORDINATOR, STORE

# The week before NOW holds the end of summer time in Europe/Amsterdam (Sunday 25 October).
NOW = datetime(2026, 10, 28, 12, 0, tzinfo=UTC)
WEEK = (NOW - timedelta(days=8), NOW + timedelta(days=1))
# A narrower window with edges inside busy hours, so the half-open boundaries matter.
WEEKEND = (datetime(2026, 10, 24, 9, 30, tzinfo=UTC), datetime(2026, 10, 26, 18, 45, tzinfo=UTC))
SOURCE = "acme-facebook"
BETA_PAGE = "204729384756999"


# --- the demo's week in a store --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Demo:
    """The running service after its first poll, and its clock."""

    app: web.Application
    client: Any
    clock: FakeClock
    config: Config
    config_path: Path

    @property
    def engine(self) -> AsyncEngine:
        return self.app[STORE].engine


async def start_demo(
    tmp_path: Path,
    aiohttp_client: Any,
    *,
    database_url: str | None,
    extra_pages: tuple[FakeGraphApi, ...] = (),
    tokens: tuple[ApiToken, ...] = (),
) -> Demo:
    """The demo's page and config, the real app on a fake clock, and one poll of each source."""
    api = FakeGraphApi(page_id=PAGE_ID, page_name=PAGE_NAME, access_token=TOKEN)
    stats = seed_history(api, now=NOW)
    assert stats.comments > 200
    await api.start()
    pages = (api, *extra_pages)
    path = write_demo_config(tmp_path / "demo", api_base_url=api.base_url, port=0)
    config = load_config(path)
    acme = config.sources[0]
    extra_sources = [
        acme.model_copy(
            update={
                "name": f"beta-{n}",
                "brand": "beta",
                "page_id": page.page_id,
                "api_base_url": page.base_url,
            }
        )
        for n, page in enumerate(extra_pages)
    ]
    update: dict[str, Any] = {
        "sources": [acme, *extra_sources],
        "http": config.http.model_copy(update={"api_tokens": list(tokens)}),
    }
    if database_url is not None:
        update["database_url"] = database_url
    config = config.model_copy(update=update)
    clock = FakeClock(NOW)
    app = create_app(config, clock=clock, start_polling=False)
    # The lead wires the API into create_app; until then (or twice) register it once here.
    if not any(r.canonical == "/api/v1/report" for r in app.router.resources()):
        add_api_routes(app)

    async def stop_pages(_app: web.Application) -> None:
        for page in pages:
            await page.stop()

    app.on_cleanup.append(stop_pages)
    client = await aiohttp_client(app)
    for source in config.sources:
        await app[COORDINATOR].poll_once(source.name)
        assert app[COORDINATOR].sources[source.name].failures == 0
    return Demo(app=app, client=client, clock=clock, config=config, config_path=path)


# --- the independent SQL ---------------------------------------------------------------------

UNANSWERED = "('open', 'warning', 'breached')"
ANSWERED = "('answered_in_time', 'answered_late')"
IN_WINDOW = "created_at >= :since AND created_at < :until"


def _params(sql: str) -> Any:
    # Bound through the column type so SQLite compares its stored text format.
    names = [n for n in ("since", "until", "as_of") if f":{n}" in sql]
    return text(sql).bindparams(*(bindparam(n, type_=UTCDateTime()) for n in names))


def _labels(group: list[str]) -> str:
    """The key columns of a row: grouped columns as they are, the others as '*' / 'all'."""
    source = "source" if "source" in group else "'*'"
    brand = "brand" if "brand" in group else "'*'"
    period = "period" if "period" in group else "'all'"
    return f"{source} AS k_source, {brand} AS k_brand, {period} AS k_period"


async def sql_counts(
    engine: AsyncEngine, group: list[str], since: datetime, until: datetime, as_of: datetime
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Counts per group of the items created in [since, until)."""
    group_by = f"GROUP BY {', '.join(group)}" if group else ""
    sql = f"""
        SELECT {_labels(group)},
               COUNT(*) AS items,
               COALESCE(SUM(CASE WHEN state = 'dismissed' THEN 1 ELSE 0 END), 0) AS dismissed,
               COALESCE(SUM(CASE WHEN state IN {ANSWERED} THEN 1 ELSE 0 END), 0) AS answered,
               COALESCE(SUM(CASE WHEN state = 'answered_in_time' THEN 1 ELSE 0 END), 0)
                   AS answered_in_time,
               COALESCE(SUM(CASE WHEN state = 'answered_late' THEN 1 ELSE 0 END), 0)
                   AS answered_late,
               COALESCE(SUM(CASE WHEN state IN {UNANSWERED} AND due_at <= :as_of
                                 THEN 1 ELSE 0 END), 0) AS breached_open,
               COALESCE(SUM(CASE WHEN state IN {UNANSWERED} AND due_at > :as_of
                                 THEN 1 ELSE 0 END), 0) AS pending,
               COALESCE(SUM(CASE WHEN period = 'after_hours' THEN 1 ELSE 0 END), 0)
                   AS after_hours
        FROM items
        WHERE {IN_WINDOW}
        {group_by}
    """
    async with engine.connect() as conn:
        result = await conn.execute(_params(sql), {"since": since, "until": until, "as_of": as_of})
        rows = [dict(r) for r in result.mappings()]
    return {(r.pop("k_source"), r.pop("k_brand"), r.pop("k_period")): r for r in rows}


async def sql_percentiles(
    engine: AsyncEngine, group: list[str], column: str, since: datetime, until: datetime
) -> dict[tuple[str, str, str], tuple[float | None, float | None]]:
    """Nearest-rank median and p90 of `column` over answered items: rank ⌈q·N⌉ of the sorted
    values, i.e. (N + 1) / 2 and (9N + 9) / 10 in integer division."""
    partition = f"PARTITION BY {', '.join(group)}" if group else ""
    group_by = f"GROUP BY {', '.join(group)}" if group else ""
    outer = ", ".join(group)
    sql = f"""
        WITH ranked AS (
            SELECT {outer}{"," if group else ""}
                   {column} AS v,
                   ROW_NUMBER() OVER ({partition} ORDER BY {column}) AS rn,
                   COUNT(*) OVER ({partition}) AS n
            FROM items
            WHERE {IN_WINDOW} AND state IN {ANSWERED}
        )
        SELECT {_labels(group)},
               MAX(CASE WHEN rn = (n + 1) / 2 THEN v END) AS median,
               MAX(CASE WHEN rn = (9 * n + 9) / 10 THEN v END) AS p90
        FROM ranked
        {group_by}
    """
    async with engine.connect() as conn:
        result = await conn.execute(_params(sql), {"since": since, "until": until, "as_of": since})
        return {
            (r["k_source"], r["k_brand"], r["k_period"]): (r["median"], r["p90"])
            for r in result.mappings()
            if r["k_source"] is not None  # the empty-group row of a query without answers
        }


GROUPS = [["source", "brand", "period"], ["source", "brand"], ["brand"], []]


async def sql_report(
    engine: AsyncEngine, since: datetime, until: datetime, as_of: datetime
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every report row, from SQL alone (ratios divided here, in plain Python)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for group in GROUPS:
        counts = await sql_counts(engine, group, since, until, as_of)
        wall = await sql_percentiles(engine, group, "response_seconds", since, until)
        sla = await sql_percentiles(engine, group, "response_sla_seconds", since, until)
        for key, row in counts.items():
            decided = row["answered_in_time"] + row["answered_late"] + row["breached_open"]
            row["compliance"] = row["answered_in_time"] / decided if decided else None
            after_hours = row.pop("after_hours")
            all_row = key[2] == "all"
            row["after_hours_share"] = after_hours / row["items"] if all_row else None
            row["median_response_seconds"], row["p90_response_seconds"] = wall.get(
                key, (None, None)
            )
            row["median_response_sla_seconds"], row["p90_response_sla_seconds"] = sla.get(
                key, (None, None)
            )
            rows[key] = {k: v for k, v in row.items()}
    return rows


def as_dict(row: ReportRow) -> dict[str, Any]:
    values = {k: v for k, v in vars(row).items() if k not in ("source", "brand", "period")}
    return values


def assert_rows_agree(
    report_rows: tuple[ReportRow, ...], sql_rows: dict[tuple[str, str, str], dict[str, Any]]
) -> None:
    ours = {(r.source, r.brand, r.period): as_dict(r) for r in report_rows}
    assert set(ours) == set(sql_rows)
    for key, expected in sql_rows.items():
        got = ours[key]
        for name, value in expected.items():
            if isinstance(value, float) and name in ("compliance", "after_hours_share"):
                assert got[name] == pytest.approx(value), (key, name)
            else:
                assert got[name] == value, (key, name, got[name], value)


# --- acceptance 5 ----------------------------------------------------------------------------


@pytest.mark.parametrize("window", [WEEK, WEEKEND], ids=["week", "weekend"])
async def test_report_on_the_demo_week_matches_sql(
    database_url: str, tmp_path: Path, aiohttp_client: Any, window: tuple[datetime, datetime]
) -> None:
    demo = await start_demo(tmp_path, aiohttp_client, database_url=database_url)
    since, until = window
    sources = {s.name: s.brand for s in demo.config.sources}
    items = await report_items(demo.app[STORE], since=since, until=until)
    unanswered = [i for i in items if i.state.is_unanswered]
    # The poll itself, later instants where the stored state lags the deadlines, and the
    # instant just before the newest unanswered item fell due (so `pending` is not zero).
    pending_at = max(i.due_at for i in unanswered) - timedelta(seconds=1)
    pending_seen = 0
    for as_of in (NOW, NOW + timedelta(minutes=20), NOW + timedelta(hours=2), pending_at):
        result = build_report(items, since=since, until=until, as_of=as_of, sources=sources)
        expected = await sql_report(demo.engine, since, until, as_of)
        assert_rows_agree(result.rows, expected)
        pending_seen += expected[("*", "*", "all")]["pending"]
    assert pending_seen > 0

    overall = {(r.source, r.brand, r.period): r for r in result.rows}[("*", "*", "all")]
    # The cross-check means something only if the week exercises every figure.
    assert overall.items > (150 if window == WEEK else 40)
    assert overall.dismissed > 0 and overall.answered_late > 0 and overall.breached_open > 0
    assert overall.after_hours_share is not None and 0 < overall.after_hours_share < 1


async def test_moderator_report_matches_sql(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    demo = await start_demo(tmp_path, aiohttp_client, database_url=database_url)
    since, until = WEEK
    items = await report_items(demo.app[STORE], since=since, until=until)
    result = build_moderator_report(items, since=since, until=until, as_of=NOW)
    sql = f"""
        SELECT brand, source, responder, COUNT(*) AS replies,
               SUM(CASE WHEN state = 'answered_in_time' THEN 1 ELSE 0 END) AS in_time,
               SUM(CASE WHEN state = 'answered_late' THEN 1 ELSE 0 END) AS late,
               SUM(response_seconds) AS total
        FROM items
        WHERE {IN_WINDOW} AND state IN {ANSWERED}
        GROUP BY brand, source, responder
    """
    async with demo.engine.connect() as conn:
        found = await conn.execute(_params(sql), {"since": since, "until": until})
        expected = {
            (r.brand, r.source, r.responder): (r.replies, r.in_time, r.late)
            for r in found.mappings()
        }
    got = {(r.brand, r.source, r.responder): (r.replies, r.in_time, r.late) for r in result.rows}
    assert got == expected
    assert got[("acme", SOURCE, PAGE_NAME)][0] > 100  # the page answers under its own name
    row: ModeratorRow = result.rows[0]
    assert row.median_response_seconds is not None and row.p90_response_seconds is not None
    assert row.median_response_seconds <= row.p90_response_seconds


# --- the CLI, end to end ---------------------------------------------------------------------


def run_report(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "report", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_report_on_the_demo_database(tmp_path: Path, aiohttp_client: Any) -> None:
    # The demo's own config, SQLite file and all.
    demo = await start_demo(tmp_path, aiohttp_client, database_url=None)
    since, until = "2026-10-20T00:00Z", "2026-10-28T13:00:00+01:00"
    window = ["--since", since, "--until", until]

    result = await asyncio.to_thread(run_report, demo.config_path, *window, "--format", "json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["since"] == "2026-10-20T00:00:00+00:00"
    # Without an offset, a date is the brand's (Europe/Amsterdam, CEST) midnight.
    local = await asyncio.to_thread(
        run_report, demo.config_path, "--since", "2026-10-20", "--until", until, "--format", "json"
    )
    assert json.loads(local.stdout)["since"] == "2026-10-19T22:00:00+00:00"
    assert body["until"] == "2026-10-28T12:00:00+00:00"
    # The CLI judged outcomes at the real time of its run; do the same here.
    as_of = parse_instant(body["as_of"])
    items = await report_items(
        demo.app[STORE], since=parse_instant(since), until=parse_instant(until)
    )
    expected = build_report(
        items,
        since=parse_instant(since),
        until=parse_instant(until),
        as_of=as_of,
        # Every configured source has its rows, those without items in the window too.
        sources={s.name: s.brand for s in load_config(demo.config_path).sources},
    )
    assert body == expected.to_json()

    table = await asyncio.to_thread(run_report, demo.config_path, *window)
    assert table.returncode == 0, table.stderr
    assert "SLA report" in table.stdout and "%" in table.stdout
    blocks = table.stdout.split("\n\n")
    assert blocks[-1].splitlines()[0].split() == ["all", "sources", "(all", "brands)", "all"]
    assert max(len(line) for line in table.stdout.splitlines()) <= 100

    csv_run = await asyncio.to_thread(
        run_report, demo.config_path, *window, "--format", "csv", "--by", "moderator"
    )
    rows = list(csv.DictReader(io.StringIO(csv_run.stdout)))
    assert {r["responder"] for r in rows} >= {PAGE_NAME}

    listing = await asyncio.to_thread(
        run_report, demo.config_path, *window, "--format", "json", "--items", "--brand", "acme"
    )
    lines = json.loads(listing.stdout)["rows"]
    assert len(lines) == len(items)
    assert all(line["permalink"].startswith("https://") for line in lines)
    # The id that POST /api/v1/items/{id}/ack and /dismiss take.
    assert sorted(line["id"] for line in lines) == sorted(item.message_id for item in items)

    for bad, message in [
        (["--since", "last week", "--until", until], "invalid time 'last week'"),
        (["--since", until, "--until", since], "must be before"),
        ([*window, "--brand", "nope"], "unknown brand 'nope'"),
        ([*window, "--items", "--by", "moderator"], "not allowed with argument"),
    ]:
        failed = await asyncio.to_thread(run_report, demo.config_path, *bad)
        assert failed.returncode == 2, (bad, failed.stderr)
        assert message in failed.stderr


# --- the HTTP API ----------------------------------------------------------------------------

ALL_TOKEN = "all-brands-token-5f2e9a"
BETA_TOKEN = "beta-only-token-c81d07"


@pytest.fixture
async def beta_page() -> AsyncIterator[FakeGraphApi]:
    page = FakeGraphApi(page_id=BETA_PAGE, page_name="Beta Bikes", access_token=TOKEN)
    seed_history(page, now=NOW, days=2, seed=3)
    # Two questions still waiting at NOW (Wednesday 13:00 in Amsterdam, office hours: 60 min
    # target; the demo config warns at 10%, i.e. after 6 min): one open, one in warning.
    post = page.add_post(created_time=NOW - timedelta(hours=2), message="Nieuwe fietsen!")
    for minutes, who in ((50, ("300001", "Wim")), (3, ("300002", "Zoe"))):
        page.add_comment(
            post_id=post,
            created_time=NOW - timedelta(minutes=minutes),
            message="Prijs?",
            author=who,
        )
    await page.start()
    yield page
    await page.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_api_report_and_items(
    tmp_path: Path, aiohttp_client: Any, beta_page: FakeGraphApi
) -> None:
    demo = await start_demo(
        tmp_path,
        aiohttp_client,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/api.db",
        extra_pages=(beta_page,),
        tokens=(
            ApiToken(token=SecretStr(ALL_TOKEN), brands=["*"]),
            ApiToken(token=SecretStr(BETA_TOKEN), brands=["beta"]),
        ),
    )
    client = demo.client
    week = {"since": WEEK[0].isoformat(), "until": WEEK[1].isoformat()}

    # Who may ask.
    for headers in ({}, bearer("wrong"), {"Authorization": f"Basic {ALL_TOKEN}"}):
        denied = await client.get("/api/v1/report", params=week, headers=headers)
        assert denied.status == 401
        assert denied.headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in await denied.json()

    # Everything, for the all-brands token: the same JSON as the CLI computes.
    full = await client.get("/api/v1/report", params=week, headers=bearer(ALL_TOKEN))
    assert full.status == 200, await full.text()
    assert full.headers["Cache-Control"] == "no-store"
    body = await full.json()
    items = await report_items(demo.app[STORE], since=WEEK[0], until=WEEK[1])
    sources = {s.name: s.brand for s in demo.config.sources}
    expected = build_report(items, since=WEEK[0], until=WEEK[1], as_of=NOW, sources=sources)
    assert body == expected.to_json()
    assert {row["brand"] for row in body["rows"]} == {"acme", "beta", "*"}

    # The beta token sees beta only, even in the overall row.
    beta = await (
        await client.get("/api/v1/report", params=week, headers=bearer(BETA_TOKEN))
    ).json()
    assert {row["brand"] for row in beta["rows"]} == {"beta", "*"}
    overall = next(r for r in beta["rows"] if r["brand"] == "*")
    beta_items = [i for i in items if i.brand == "beta"]
    assert overall["items"] == len(beta_items) > 0
    forbidden = await client.get(
        "/api/v1/report", params={**week, "brand": "acme"}, headers=bearer(BETA_TOKEN)
    )
    assert forbidden.status == 403
    own = await client.get(
        "/api/v1/report", params={**week, "brand": "beta"}, headers=bearer(BETA_TOKEN)
    )
    assert own.status == 200
    moderators = await client.get(
        "/api/v1/report", params={**week, "by": "moderator"}, headers=bearer(BETA_TOKEN)
    )
    assert {row["responder"] for row in (await moderators.json())["rows"]} == {"Beta Bikes"}
    listing = await client.get(
        "/api/v1/report", params={**week, "items": "1"}, headers=bearer(BETA_TOKEN)
    )
    assert len((await listing.json())["rows"]) == len(beta_items)

    # /api/v1/items: states judged as of the service's clock.
    async def states(token: str, state: str) -> list[dict[str, Any]]:
        response = await client.get("/api/v1/items", params={"state": state}, headers=bearer(token))
        assert response.status == 200, await response.text()
        rows: list[dict[str, Any]] = (await response.json())["rows"]
        return rows

    waiting = await states(ALL_TOKEN, "open,warning")
    breached = await states(ALL_TOKEN, "breached")
    assert [(r["author"], r["state"]) for r in waiting] == [("Wim", "warning"), ("Zoe", "open")]
    assert breached
    assert {r["state"] for r in breached} == {"breached"}
    assert all(parse_instant(r["due_at"]) <= NOW for r in breached)
    assert {r["brand"] for r in await states(BETA_TOKEN, "breached")} <= {"beta"}
    assert demo.app[CLOCK] is demo.clock
    await demo.clock.advance(3600)  # every target is at most 60 min: all waiting ones are late
    assert len(await states(ALL_TOKEN, "breached")) == len(breached) + len(waiting)
    assert await states(ALL_TOKEN, "open,warning") == []
    in_time = await states(BETA_TOKEN, "answered_in_time")
    assert in_time and all(r["outcome"] == "in_time" and r["brand"] == "beta" for r in in_time)

    # Bad queries.
    for path, params in [
        ("/api/v1/report", {"since": "soon", "until": week["until"]}),
        ("/api/v1/report", {"since": week["since"]}),
        ("/api/v1/report", {"since": week["until"], "until": week["since"]}),
        ("/api/v1/report", {**week, "by": "brand"}),
        ("/api/v1/report", {**week, "items": "maybe"}),
        ("/api/v1/report", {**week, "brand": "nope"}),
        ("/api/v1/items", {"state": "lost"}),
    ]:
        bad = await client.get(path, params=params, headers=bearer(ALL_TOKEN))
        assert bad.status == 400, (path, params)
        assert "error" in await bad.json()


async def test_api_refuses_when_no_token_is_configured(tmp_path: Path, aiohttp_client: Any) -> None:
    demo = await start_demo(
        tmp_path, aiohttp_client, database_url=f"sqlite+aiosqlite:///{tmp_path}/none.db"
    )
    for path in ("/api/v1/report", "/api/v1/items"):
        response = await demo.client.get(path, headers=bearer("anything"))
        assert response.status == 403
        assert "no token is configured" in (await response.json())["error"]


def test_report_windows_default_to_local_days_of_the_brand() -> None:
    """No window: the last 7 local days, today included; --last and --month in local time."""
    import argparse

    from monitor.cli.report import report_window
    from monitor.config import parse_config

    config = parse_config(
        {
            "calendars": {
                "office": {"timezone": "Europe/Amsterdam", "hours": ["mon-fri 09:00-17:00"]}
            },
            "sources": [
                {
                    "type": "facebook_page",
                    "name": "a",
                    "brand": "acme",
                    "page_id": "1",
                    "access_token": "t",
                }
            ],
        }
    )

    def window(**given: str | None) -> tuple[str, str]:
        args = argparse.Namespace(since=None, until=None, last=None, month=None, brand=None)
        for key, value in given.items():
            setattr(args, key, value)
        # 23:30 UTC on 28 March 2026 is already 29 March in Amsterdam, the night DST begins.
        since, until = report_window(args, config, datetime(2026, 3, 28, 23, 30, tzinfo=UTC))
        return since.isoformat(), until.isoformat()

    assert window() == ("2026-03-22T23:00:00+00:00", "2026-03-29T22:00:00+00:00")
    assert window(last="1d") == ("2026-03-28T23:00:00+00:00", "2026-03-29T22:00:00+00:00")
    assert window(month="2026-03") == ("2026-02-28T23:00:00+00:00", "2026-03-31T22:00:00+00:00")
    assert window(month="2026-12")[1] == "2026-12-31T23:00:00+00:00"
    for bad in ({"month": "2026-13"}, {"last": "week"}, {"month": "2026-11", "since": "x"}):
        with pytest.raises(ValueError):
            window(**bad)
