"""/metrics the Prometheus way (issue 15, part 3): negotiated format, gzip, no `_created`, cache.

The real service (create_app, SQLite, fake Graph API, fake clock) with one answered comment,
so counters and both response-time histograms have values. A real Prometheus (Debian
package) scrapes it with its own Accept header; aiohttp clients send that header too, and none.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.exposition import EXPOSITION
from monitor.web.keys import COORDINATOR
from tests.e2e.conftest import write_config
from tests.e2e.test_restart import free_port
from tests.unit.test_dashboards import require_binary

# What Prometheus (2.x) sends on every scrape.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, office hours in Amsterdam
ITEMS = ("webcare_items_total", {"brand": "acme", "source": "acme-fb", "period": "office_hours"})


async def answered_service(graph: FakeGraphApi, tmp_path: Path) -> web.Application:
    """The service after one poll that stored a comment and the page's reply to it."""
    post = graph.add_post(created_time=NOW - timedelta(hours=3), message="Winter coats")
    comment = graph.add_comment(
        post_id=post,
        created_time=NOW - timedelta(hours=2),
        message="Sizes?",
        author=("9001", "Ann Consumer"),
    )
    graph.add_comment(
        post_id=post,
        created_time=NOW - timedelta(hours=2) + timedelta(minutes=20),
        message="S to XXL",
        parent_id=comment,
    )
    config = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
    )
    return create_app(load_config(config), clock=FakeClock(NOW), start_polling=False)


def sample_value(families: Any, name: str, labels: dict[str, str]) -> float | None:
    for family in families:
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


async def test_prometheus_accept_header_gets_gzipped_openmetrics_without_created(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = await answered_service(graph, tmp_path)
    client = await aiohttp_client(app)
    await app[COORDINATOR].poll_once("acme-fb")

    response = await client.get(
        "/metrics",
        headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
        auto_decompress=False,
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith(
        "application/openmetrics-text; version=1.0.0"
    )
    assert response.headers["Content-Encoding"] == "gzip"
    openmetrics = gzip.decompress(await response.read()).decode()
    assert openmetrics.endswith("# EOF\n")
    # The strict OpenMetrics parser accepts every line of it.
    families = list(openmetrics_families(openmetrics))
    assert sample_value(families, *ITEMS) == 1
    responded = {"brand": "acme", "source": "acme-fb", "period": "office_hours"}
    assert sample_value(families, "webcare_first_response_seconds_count", responded) == 1
    assert sample_value(families, "webcare_first_response_seconds_sum", responded) == 1200
    names = {s.name for f in families for s in f.samples}
    assert "webcare_first_response_sla_seconds_bucket" in names
    assert not [n for n in names if n.endswith("_created")]
    assert "_created" not in openmetrics

    # No Accept header (curl, a browser): the classic text format, not compressed.
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in plain.headers
    text = await plain.text()
    assert "_created" not in text
    assert "# EOF" not in text
    assert sample_value(text_string_to_metric_families(text), *ITEMS) == 1


async def test_scrapes_within_a_second_share_one_render(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = await answered_service(graph, tmp_path)
    client = await aiohttp_client(app)
    exposition = app[EXPOSITION]
    # A small registry renders in milliseconds and is not kept by default; keep every one.
    exposition.cache_from = 0.0
    openmetrics = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}

    # Ten scrapers at once, gzip or not: one collection of the registry, one compression.
    answers = await asyncio.gather(
        *(
            client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": enc})
            for enc in ("gzip", "identity") * 5
        )
    )
    bodies = {await a.read() for a in answers}
    assert {a.status for a in answers} == {200}
    assert len(bodies) == 1  # aiohttp decompressed the gzipped ones: the same bytes
    assert (exposition.renders, exposition.compressions) == (1, 1)

    # A second scrape within the second: served from the cache, even after a new event.
    await app[COORDINATOR].poll_once("acme-fb")
    again = await client.get("/metrics", headers=openmetrics)
    assert await again.read() in bodies
    assert exposition.renders == 1

    # Later than a second: rendered again, with the new count.
    await asyncio.sleep(1.05)
    later = await client.get("/metrics", headers=openmetrics)
    assert sample_value(openmetrics_families(await later.text()), *ITEMS) == 1
    assert exposition.renders == 2
    # The classic text format is a rendering of its own.
    await client.get("/metrics")
    assert exposition.renders == 3


async def test_a_real_prometheus_negotiates_openmetrics_and_stores_no_created_series(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_server: Any
) -> None:
    prometheus = require_binary("prometheus", "prometheus")
    app = await answered_service(graph, tmp_path)
    seen: list[tuple[str, str, str, str]] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/metrics":
            seen.append(
                (
                    request.headers.get("Accept", ""),
                    request.headers.get("Accept-Encoding", ""),
                    response.headers.get("Content-Type", ""),
                    response.headers.get("Content-Encoding", ""),
                )
            )

    app.on_response_prepare.append(record)
    server = await aiohttp_server(app, port=free_port())
    await app[COORDINATOR].poll_once("acme-fb")

    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: webcare-monitor\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.port}']\n",
        encoding="utf-8",
    )
    log = tmp_path / "prometheus.log"
    with log.open("ab") as stream:
        process = await asyncio.create_subprocess_exec(
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    try:
        async with aiohttp.ClientSession() as session:

            async def query(expr: str) -> list[dict[str, Any]]:
                url = f"http://127.0.0.1:{prom_port}/api/v1/query"
                try:
                    async with session.get(url, params={"query": expr}) as response:
                        body = await response.json()
                except (aiohttp.ClientError, ValueError):
                    return []
                assert body["status"] == "success", body
                result: list[dict[str, Any]] = body["data"]["result"]
                return result

            deadline = time.monotonic() + 60
            items: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not items:
                await asyncio.sleep(0.5)
                items = await query('webcare_items_total{source="acme-fb",period="office_hours"}')
            assert items, log.read_text(errors="replace")[-2000:]
            assert float(items[0]["value"][1]) == 1
            assert (await query('up{job="webcare-monitor"}'))[0]["value"][1] == "1"
            assert await query('webcare_first_response_seconds_count{source="acme-fb"} > 0')
            assert await query('{__name__=~".+_created"}') == []
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)
    accept, encoding, content_type, content_encoding = seen[0]
    assert accept.startswith("application/openmetrics-text;version=1.0.0")
    assert "gzip" in encoding
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert content_encoding == "gzip"
