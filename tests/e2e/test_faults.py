"""A failing Graph API never crashes the service: down once, recovered once, nothing lost."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.logging import configure_logging
from monitor.simulator.graph_api import (
    Delay,
    Disconnect,
    FakeGraphApi,
    GraphError,
    HttpStatus,
    MalformedJson,
    TruncatedBody,
)
from monitor.web.keys import COORDINATOR, METRICS, STORE
from tests.e2e.conftest import TOKEN, write_config

NOW = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
FAULTS = [
    (GraphError(code=2), "transient"),
    (GraphError(code=1, status=500), "transient"),
    (HttpStatus(status=502), "transient"),
    (Delay(seconds=5), "transient"),  # longer than request_timeout = 2s
    (MalformedJson(), "transient"),
    (TruncatedBody(), "transient"),
    (Disconnect(), "transient"),
    (GraphError(code=17), "rate_limited"),
    (GraphError(code=190, subcode=463), "auth"),
    (GraphError(code=100, subcode=1), "fatal"),
]


async def test_every_fault_marks_the_source_down_once_and_it_recovers(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    logs = io.StringIO()
    configure_logging(level="debug", fmt="json", secrets=[TOKEN], stream=logs)
    post = graph.add_post(created_time=NOW - timedelta(hours=1), message="Hi")
    graph.add_comment(
        post_id=post, created_time=NOW - timedelta(minutes=50), message="?", author=("1", "A")
    )
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            api_base_url=graph.base_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/f.db",
        )
    )
    clock = FakeClock(NOW)
    app = create_app(config, clock=clock, start_polling=False)
    await aiohttp_client(app)
    coordinator, metrics = app[COORDINATOR], app[METRICS]
    up = metrics.source_up.labels("acme", "acme-fb", "facebook_page")
    await coordinator.poll_once("acme-fb")
    assert up._value.get() == 1

    delays = []
    for number, (fault, reason) in enumerate(FAULTS):
        # Traffic keeps arriving during the outage; it must be there after recovery.
        graph.add_comment(
            post_id=post,
            created_time=NOW + timedelta(minutes=number),
            message=f"#{number}",
            author=("2", "B"),
        )
        graph.inject(fault, times=None)  # broken for the whole poll (aiohttp retries resets once)
        errors_before = metrics.poll_errors.labels("acme", "acme-fb", reason)._value.get()
        delays.append(await coordinator.poll_once("acme-fb"))
        assert up._value.get() == 0, fault
        assert (
            metrics.poll_errors.labels("acme", "acme-fb", reason)._value.get() == errors_before + 1
        ), fault
        graph.clear_faults()

    # Backoff grows with consecutive failures (equal jitter: at least half the nominal delay).
    assert delays[-1] > delays[0]
    await coordinator.poll_once("acme-fb")
    assert up._value.get() == 1
    items = await app[STORE].items_between(NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert len(items) == 1 + len(FAULTS)

    lines = [orjson.loads(line) for line in logs.getvalue().splitlines()]
    events = [line["event"] for line in lines]
    assert events.count("source down") == 1
    assert events.count("source recovered") == 1
    assert TOKEN not in logs.getvalue()
