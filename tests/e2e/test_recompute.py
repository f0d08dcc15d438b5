"""`db recompute`: a changed policy or calendar re-derives stored items from the raw messages."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.simulator.graph_api import FakeGraphApi
from monitor.store import Store, create_engine
from monitor.web.keys import COORDINATOR
from tests.e2e.conftest import write_config
from tests.e2e.test_facebook_to_metrics import script_history, utc

COVERAGE_07_23 = """
[calendars.team]
timezone = "Europe/Amsterdam"
hours = ["mon-sun 07:00-23:00"]
"""


async def outcomes(db: str) -> dict[str, tuple[str, float | None, float | None]]:
    engine = create_engine(db)
    try:
        items = await Store(engine).items_between(utc(2026, 1, 1), utc(2027, 1, 1))
    finally:
        await engine.dispose()
    return {
        i.created_at.strftime("%d %H:%M"): (i.state.value, i.response_sla_seconds, i.target_seconds)
        for i in items
    }


async def test_recompute_applies_a_new_target_and_coverage_calendar(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    script_history(graph)
    db = f"sqlite+aiosqlite:///{tmp_path}/r.db"
    path = write_config(tmp_path / "c.toml", api_base_url=graph.base_url, database_url=db)
    app = create_app(load_config(path), clock=FakeClock(utc(2026, 11, 22, 12)), start_polling=False)
    await aiohttp_client(app)
    await app[COORDINATOR].poll_once("acme-fb")
    await app.shutdown()
    await app.cleanup()
    before = await outcomes(db)
    assert before["16 19:00"] == ("answered_late", 2700.0, 1800.0)

    # After hours now 60 min, and the SLA clock runs 07:00-23:00 only.
    text = path.read_text().replace('after_hours = "30m"', 'after_hours = "60m"\ncoverage = "team"')
    path.write_text(text + COVERAGE_07_23)
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "monitor", "db", "recompute", "-c", str(path)],
        *["--since", "2026-11-01"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert "recomputed 7 items" in stdout.decode()
    # Progress on stderr, per source, as log lines when not on a terminal.
    logged = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    done = next(e for e in logged if e["event"] == "recompute done")
    assert (done["source"], done["done"], done["total"], done["unit"]) == ("acme-fb", 7, 7, "items")
    assert any(e["event"] == "recompute progress" for e in logged)
    assert "5 changed" in stdout.decode()  # the five after-hours items: new target
    after = await outcomes(db)
    # 20:00-20:45 local lies inside 07:00-23:00: 2700 s of SLA time, now within 60 min.
    assert after["16 19:00"] == ("answered_in_time", 2700.0, 3600.0)
    # Office-hours targets did not change; the dismissed item stays dismissed.
    assert after["16 10:00"] == before["16 10:00"]
    assert after["21 12:00"][0] == "dismissed"
