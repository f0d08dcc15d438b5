"""Token expiry from /debug_token: exported as a metric, warned about days ahead."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import FacebookPageConfig, load_config
from monitor.logging import configure_logging
from monitor.poller.token_watch import TokenWatch
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import HTTP_SESSION, METRICS
from tests.e2e.conftest import TOKEN, write_config

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def watch(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any) -> tuple[Any, str]:
    logs = io.StringIO()
    configure_logging(level="info", fmt="json", secrets=[TOKEN], stream=logs)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            api_base_url=graph.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db",
        )
    )
    clock = FakeClock(NOW)
    app = create_app(config, clock=clock, start_polling=False)
    await aiohttp_client(app)
    watcher = TokenWatch(
        sources=[s for s in config.sources if isinstance(s, FacebookPageConfig)],
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
