"""The report's lost_window (issue 19 point 2): Messenger items whose reply window closed before
the Page's reply or while they wait, through the real pipeline, item by item and in SQL alike,
and the same count as the webcare_messaging_windows_lost gauge."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.domain import SourceRef
from monitor.metrics.messenger import MessengerFigures
from monitor.report import ALL, PERIOD_ALL, ReportRow, build_items_report, build_report
from monitor.report_format import render
from monitor.simulator.graph_api import FakeGraphApi
from monitor.store.reports import report_items, summary_report
from monitor.web.keys import COORDINATOR, STORE
from tests.e2e.conftest import PAGE_ID, TOKEN, write_config

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # Wednesday 13:00 CET
SINCE, UNTIL = NOW - timedelta(days=7), NOW + timedelta(days=1)
MESSENGER, WALL = "acme-messenger", "acme-fb"
API_TOKEN = "report-token"
ZONE = ZoneInfo("Europe/Amsterdam")


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


async def start(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any) -> tuple[Any, Any]:
    extra = f"""
[[sources]]
type = "messenger"
name = "{MESSENGER}"
brand = "acme"
page_id = "{PAGE_ID}"
access_token = "{TOKEN}"
api_base_url = "{graph.base_url}"
"""
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/w.db",
        extra=extra,
    )
    path.write_text(path.read_text() + f'[[http.api_tokens]]\ntoken = "{API_TOKEN}"\n')
    app = create_app(load_config(path), clock=FakeClock(NOW), start_polling=False)
    client = await aiohttp_client(app)
    for source in (MESSENGER, WALL):
        await app[COORDINATOR].poll_once(source)
    return app, client


def say(graph: FakeGraphApi, who: str, *turns: tuple[float, bool]) -> None:
    conversation = graph.add_conversation((f"2400000000000{who[0]}", who))
    for hours, from_page in turns:
        graph.add_message(conversation, created_time=ago(hours), message="…", from_page=from_page)


def row(rows: tuple[ReportRow, ...], source: str, brand: str = "acme") -> ReportRow:
    [found] = [r for r in rows if (r.source, r.brand, r.period) == (source, brand, PERIOD_ALL)]
    return found


async def test_items_that_lost_their_window_item_by_item_in_sql_and_in_every_format(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    say(graph, "1ann", (30, False), (29, True))  # answered in the window
    say(graph, "2bob", (50, False), (20, True))  # its window closed 26 h ago, then the reply
    say(graph, "3cy", (30, False))  # still waiting, its window closed 6 h ago
    say(graph, "4dee", (2, False))  # waiting, 22 h left
    post = graph.add_post(created_time=ago(5), message="Deals")
    graph.add_comment(post_id=post, created_time=ago(4), message="Price?", author=("9001", "Ed"))
    app, client = await start(graph, tmp_path, aiohttp_client)
    store = app[STORE]

    found = await report_items(store, since=SINCE, until=UNTIL)
    items = build_items_report(found, since=SINCE, until=UNTIL, as_of=NOW)
    # Answered items' authors are pseudonyms: each item by its creation time.
    lost = {(line.source, line.created_at, line.lost_window) for line in items.rows}
    assert lost == {
        (MESSENGER, ago(30), False),  # Ann
        (MESSENGER, ago(50), True),  # Bob
        (MESSENGER, ago(30), True),  # Cy
        (MESSENGER, ago(2), False),  # Dee
        (WALL, ago(4), None),
    }

    by_items = build_report(found, since=SINCE, until=UNTIL, as_of=NOW, windowed={MESSENGER})
    in_sql = await summary_report(store, since=SINCE, until=UNTIL, as_of=lambda: NOW)
    assert in_sql == by_items
    assert row(in_sql.rows, MESSENGER).lost_window == 2
    assert row(in_sql.rows, ALL).lost_window == 2  # the brand's total
    assert row(in_sql.rows, ALL, ALL).lost_window == 2  # and everything
    assert row(in_sql.rows, WALL).lost_window is None
    # Dee's window closes in 22 h: lost by then unless answered.
    later = await summary_report(store, since=SINCE, until=UNTIL, as_of=lambda: ago(-22))
    assert row(later.rows, MESSENGER).lost_window == 3

    # The gauge counts the very same windows.
    ref = SourceRef(name=MESSENGER, brand="acme", platform="messenger")
    gauge = MessengerFigures([ref], now=lambda: NOW)
    await gauge.refresh(store, NOW)
    figures = gauge.get(MESSENGER)
    assert figures is not None and figures.lost == 2

    # Shown only where it applies: the Messenger block, the brand's total, not the wall's.
    table = render(in_sql, "table", "summary", ZONE)
    blocks = {block.splitlines()[0].split(" ")[0]: block for block in table.split("\n\n")[1:]}
    assert "lost_window" in blocks[MESSENGER] and "lost_window" in blocks["all"]
    assert "lost_window" not in blocks[WALL]
    records = list(csv.DictReader(io.StringIO(render(in_sql, "csv", "summary", ZONE))))
    assert {(r["source"], r["period"], r["lost_window"]) for r in records} >= {
        (MESSENGER, PERIOD_ALL, "2"),
        (WALL, PERIOD_ALL, ""),
    }
    rows = json.loads(render(in_sql, "json", "summary", ZONE))["rows"]
    assert [r["lost_window"] for r in rows if r["source"] == MESSENGER][-1] == 2
    assert all("lost_window" not in r for r in rows if r["source"] == WALL)
    listing = render(items, "table", "items", ZONE)
    assert "lost_window" in listing.splitlines()[3]

    # The HTTP API's report is the same JSON, judged at its clock's now.
    response = await client.get(
        f"/api/v1/report?since={SINCE.isoformat()}&until={UNTIL.isoformat()}".replace("+", "%2B"),
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    assert response.status == 200
    assert (await response.json())["rows"] == rows
