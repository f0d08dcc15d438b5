"""Token expiry from /debug_token: exported as a metric, warned about days ahead."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.poller.token_watch import TokenWatch, graph_sources
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import HTTP_SESSION, METRICS
from tests.e2e.conftest import TOKEN, write_config

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def watch(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, extra: str = ""
) -> tuple[Any, str]:
    logs = io.StringIO()
    configure_logging(level="info", fmt="json", secrets=[TOKEN], stream=logs)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            api_base_url=graph.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db",
            extra=extra,
        )
    )
    clock = FakeClock(NOW)
    app = create_app(config, clock=clock, start_polling=False)
    await aiohttp_client(app)
    watcher = TokenWatch(
        sources=graph_sources(config.sources),
        session=app[HTTP_SESSION],
        metrics=app[METRICS],
        clock=clock,
    )
    await watcher.check_all()
    return app, logs.getvalue()


async def test_expiry_within_a_week_is_exported_and_warned(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    expires = NOW + timedelta(days=3)
    graph.token_expires_at = int(expires.timestamp())
    graph.data_access_expires_at = int((NOW + timedelta(days=80)).timestamp())
    app, logs = await watch(graph, tmp_path, aiohttp_client)
    gauge = app[METRICS].token_expiry
    assert gauge.labels("acme", "acme-fb", "access")._value.get() == expires.timestamp()
    assert (
        gauge.labels("acme", "acme-fb", "data_access")._value.get()
        == (NOW + timedelta(days=80)).timestamp()
    )
    assert "access token expires soon" in logs
    assert TOKEN not in logs


async def test_a_token_that_never_expires_has_no_access_series_and_no_warning(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    graph.token_expires_at = 0
    graph.data_access_expires_at = int((NOW + timedelta(days=80)).timestamp())
    app, logs = await watch(graph, tmp_path, aiohttp_client)
    families = {
        s.labels.get("kind") for m in app[METRICS].token_expiry.collect() for s in m.samples
    }
    assert families == {"data_access"}
    assert "access token expires soon" not in logs


async def test_messenger_and_instagram_tokens_are_watched_too(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    """Their Page access tokens expire like the wall's: one check per token, every source."""
    expires = NOW + timedelta(days=2)
    graph.token_expires_at = int(expires.timestamp())
    graph.data_access_expires_at = 0
    extra = f"""
[[sources]]
type = "messenger"
name = "acme-dm"
brand = "acme"
page_id = "1234567890"
access_token = "{TOKEN}"
api_base_url = "{graph.base_url}"
[[sources]]
type = "instagram"
name = "acme-ig"
brand = "acme"
ig_user_id = "178400000"
username = "acme.nl"
access_token = "{TOKEN}"
api_base_url = "{graph.base_url}"
"""
    app, logs = await watch(graph, tmp_path, aiohttp_client, extra)
    gauge = app[METRICS].token_expiry
    for source in ("acme-fb", "acme-dm", "acme-ig"):
        assert gauge.labels("acme", source, "access")._value.get() == expires.timestamp()
    warnings = [json.loads(line) for line in logs.splitlines() if "expires soon" in line]
    # One check of the shared token speaks for the three sources (the app's own watcher at
    # start-up and this one: each round one line).
    assert warnings
    assert all(w["sources"] == ["acme-fb", "acme-dm", "acme-ig"] for w in warnings)
