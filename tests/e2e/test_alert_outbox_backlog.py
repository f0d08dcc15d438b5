"""A receiver outage end to end: the outbox gauges tell the truth every second, and the backlog
alert fires on what the service really exported (issue 22).

Ten consumer comments 20 s apart, a 5-minute target: twenty notifications (a warning and a breach
each) between minute 3 and 8, for a receiver that answers 503 until minute 25. The fake clock
steps one second at a time; each second webcare_alert_outbox_pending and
webcare_alert_outbox_oldest_age_seconds are compared with the outbox table itself. Each minute
/metrics is scraped over HTTP; those scrapes become the input of a promtool unit test of the
real WebcareAlertOutboxBacklog rule, which must fire during the outage and not after it.
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.simulator.graph_api import FakeGraphApi
from monitor.store.tables import alert_outbox
from monitor.web.keys import ALERTS, COORDINATOR, METRICS, STORE
from tests.e2e.conftest import write_config
from tests.e2e.test_alerts import ROSTER, T0, Receiver, receiver_block, receiver_url
from tests.e2e.test_facebook_to_metrics import samples, value
from tests.unit.test_dashboards import require_binary

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
ITEMS = 10
RECOVERY = T0 + timedelta(minutes=25)
END = T0 + timedelta(minutes=35)
# Only warnings and breaches: escalation and reminders would add to the count.
NO_FOLLOWUPS = """
[alerts]
escalate_to = []
remind_every = "off"
handover = "off"
"""


async def start(graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, hooks: str) -> Any:
    path = write_config(
        tmp_path / "c.toml",
        api_base_url=graph.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/backlog.db",
    )
    # T0 is after hours: a 5-minute target, so warnings (at 75%) and breaches come quickly.
    text = path.read_text().replace('after_hours = "30m"', 'after_hours = "5m"')
    path.write_text(text + ROSTER + NO_FOLLOWUPS + hooks)
    clock = FakeClock(T0 + timedelta(minutes=3, seconds=20))
    app = create_app(load_config(path), clock=clock, start_polling=False)
    client = await aiohttp_client(app)
    return app, client, clock


async def test_the_outbox_gauges_equal_the_backlog_every_second_and_the_rule_fires(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    promtool = require_binary("promtool", "prometheus")
    # Created before the app so the receiver shares its clock.
    receiver = Receiver(FakeClock(T0))
    hooks = receiver_block("team", await receiver_url(aiohttp_server, receiver))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    for k in range(ITEMS):
        graph.add_comment(
            post_id=post,
            created_time=T0 + timedelta(seconds=20 * k),
            message=f"Question {k}?",
            author=(f"90{k:02d}", f"Visitor {k}"),
        )
    app, client, clock = await start(graph, tmp_path, aiohttp_client, hooks)
    receiver.clock = clock
    receiver.down_until = RECOVERY
    await app[COORDINATOR].poll_once("acme-fb")
    outbox = app[ALERTS].outbox
    registry = app[METRICS].registry
    engine = app[STORE].engine
    # Straight from the table, not through the outbox's own backlog query.
    waiting = select(alert_outbox.c.created_at).where(
        alert_outbox.c.receiver == "team", alert_outbox.c.state == "pending"
    )

    async def truth_and_gauges() -> tuple[tuple[int, float], tuple[float, float]]:
        """The table's backlog and the two gauges, read while no outbox write is under way."""
        async with engine.connect() as conn:
            pending = (await conn.execute(waiting)).scalars().all()
        now = clock.now()
        age = max(((now - created).total_seconds() for created in pending), default=0.0)
        labels = {"receiver": "team"}
        gauges = (
            registry.get_sample_value("webcare_alert_outbox_pending", labels),
            registry.get_sample_value("webcare_alert_outbox_oldest_age_seconds", labels),
        )
        assert gauges[0] is not None and gauges[1] is not None
        return (len(pending), age), (gauges[0], gauges[1])

    seconds = 0
    peak = 0
    scrapes: list[dict[Any, float]] = []
    while clock.now() < END:
        (pending, age), (gauge_pending, gauge_age) = await outbox.between_writes(truth_and_gauges)
        assert gauge_pending == pending, (clock.now(), pending, gauge_pending)
        assert gauge_age == pytest.approx(age, abs=1e-6), (clock.now(), age, gauge_age)
        if clock.now() < RECOVERY and peak:
            assert pending > 0, "the backlog cannot drain while the receiver is down"
        peak = max(peak, pending)
        if seconds % 60 == 0:
            response = await client.get("/metrics")
            scrapes.append(samples(await response.text()))
        await clock.advance(1)
        seconds += 1
        if seconds % 15 == 0:
            await asyncio.sleep(0.01)  # let deadline re-reads and HTTP attempts run

    assert peak == 2 * ITEMS, peak  # a warning and a breach per item, all waiting at once
    assert receiver.attempts > len(receiver.bodies)
    assert sorted(b["kind"] for b in receiver.bodies) == ["breach"] * ITEMS + ["warning"] * ITEMS
    assert (await outbox.between_writes(truth_and_gauges))[0] == (0, 0.0)

    # The rule, on the series the service exported (one scrape per minute from minute 3:20).
    ages = [value(s, "webcare_alert_outbox_oldest_age_seconds", receiver="team") for s in scrapes]
    backlog = [value(s, "webcare_alert_outbox_pending", receiver="team") for s in scrapes]
    over = next(m for m, age in enumerate(ages) if age > 900)
    recovered = next(m for m in range(over, len(ages)) if ages[m] == 0)
    fires = over + 2  # for: 2m
    assert fires < recovered < len(ages) - 2, (ages, backlog)
    result = promtool_test(
        promtool, tmp_path, ages, backlog, firing=[fires, recovered - 1], quiet=[over + 1, 5]
    )
    result += promtool_test(promtool, tmp_path, ages, backlog, firing=[], quiet=[recovered + 1])
    assert result.count("SUCCESS") == 2, result


def promtool_test(
    promtool: str,
    tmp_path: Path,
    ages: list[float],
    backlog: list[float],
    *,
    firing: list[int],
    quiet: list[int],
) -> str:
    """Run `promtool test rules` on the scraped series: the alert fires at `firing` minutes."""
    alert = 'ALERTS{alertname="WebcareAlertOutboxBacklog", alertstate="firing"}'
    labels = (
        'ALERTS{alertname="WebcareAlertOutboxBacklog", alertstate="firing", receiver="team",'
        ' severity="page"}'
    )
    checks = [
        f"      - expr: '{alert}'\n        eval_time: {m}m\n        exp_samples:\n"
        f"          - labels: '{labels}'\n            value: 1\n"
        for m in firing
    ] + [
        f"      - expr: '{alert}'\n        eval_time: {m}m\n        exp_samples: []\n"
        for m in quiet
    ]
    rules = "\n".join(f"  - {p}" for p in sorted(RULES.glob("*.yml")))
    test = (
        f"rule_files:\n{rules}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n"
        "    input_series:\n"
        "      - series: 'webcare_alert_outbox_oldest_age_seconds{receiver=\"team\"}'\n"
        f"        values: '{' '.join(f'{a:g}' for a in ages)}'\n"
        "      - series: 'webcare_alert_outbox_pending{receiver=\"team\"}'\n"
        f"        values: '{' '.join(f'{b:g}' for b in backlog)}'\n"
        "    promql_expr_test:\n" + "".join(checks)
    )
    path = tmp_path / f"backlog-{len(firing)}.test.yml"
    path.write_text(test, encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, test + result.stdout + result.stderr
    return result.stdout
