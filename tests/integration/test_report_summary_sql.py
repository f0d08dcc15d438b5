"""summary_report (tallied from one SQL query) gives the very rows build_report makes from
report_items, on SQLite and PostgreSQL (issue 17, part 6)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.demo import TOKEN
from monitor.report import build_report
from monitor.simulator.graph_api import FakeGraphApi
from monitor.simulator.scenario import seed_history
from monitor.store.reports import report_items, summary_report
from monitor.web.keys import STORE
from tests.integration.test_report_sql import BETA_PAGE, NOW, WEEK, WEEKEND, start_demo


@pytest.mark.parametrize("window", [WEEK, WEEKEND], ids=["week", "weekend"])
async def test_summary_in_sql_equals_the_summary_of_items(
    database_url: str, tmp_path: Path, aiohttp_client: Any, window: tuple[datetime, datetime]
) -> None:
    beta = FakeGraphApi(page_id=BETA_PAGE, page_name="Beta Bikes", access_token=TOKEN)
    seed_history(beta, now=NOW, days=3, seed=5)
    await beta.start()
    demo = await start_demo(
        tmp_path, aiohttp_client, database_url=database_url, extra_pages=(beta,)
    )
    store = demo.app[STORE]
    since, until = window
    configured = {s.name: s.brand for s in demo.config.sources}
    # A quiet configured source, and a store whose items name a source no longer configured.
    scopes: list[dict[str, Any]] = [
        {"sources": {**configured, "quiet": "acme"}},
        {"sources": {"quiet": "zeta"}},
        {"sources": None},
        {"sources": configured, "brand": "beta"},
        {"sources": configured, "brands": ["acme"]},
    ]
    unanswered = [
        i for i in await report_items(store, since=since, until=until) if i.state.is_unanswered
    ]
    instants = [
        NOW,
        NOW + timedelta(hours=2),
        max(i.due_at for i in unanswered) - timedelta(seconds=1),
    ]
    for scope in scopes:
        brand, brands = scope.get("brand"), scope.get("brands")
        found = await report_items(
            store, since=since, until=until, brands=[brand] if brand else brands
        )
        for as_of in instants:
            expected = build_report(
                found, since=since, until=until, as_of=as_of, brand=brand, sources=scope["sources"]
            )
            got = await summary_report(
                store,
                since=since,
                until=until,
                as_of=lambda as_of=as_of: as_of,
                brand=brand,
                brands=brands,
                sources=scope["sources"],
            )
            assert got == expected, scope
    overall = got.rows[-1]
    assert overall.items > 0 and overall.answered > 0 and overall.median_response_seconds


async def test_an_empty_window_and_a_bad_one(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    demo = await start_demo(tmp_path, aiohttp_client, database_url=database_url)
    store = demo.app[STORE]
    since, until = NOW + timedelta(days=30), NOW + timedelta(days=31)
    sources = {s.name: s.brand for s in demo.config.sources}
    got = await summary_report(store, since=since, until=until, as_of=lambda: NOW, sources=sources)
    assert got == build_report([], since=since, until=until, as_of=NOW, sources=sources)
    with pytest.raises(ValueError, match="must be before"):
        await summary_report(store, since=until, until=since, as_of=lambda: NOW)
