"""The demo's #acmejobs week through the real service: the campaign report shows it exactly.

Issue 21's acceptance: hundreds of posts, a handful of interactions, none followed up, as the
known case had it. The demo runs as a user starts it; the campaign command is the one its
banner prints; the expected figures come from the scenario itself, seeded afresh here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time as clock
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from monitor.demo import API_TOKEN, MASTODON_TOKEN
from monitor.simulator.campaign_scenario import BRAND_ACCOUNT, POSTS, ZONE, seed_campaign
from monitor.simulator.mastodon import FakeMastodon
from tests.e2e.test_restart import free_port

BACKFILL_SECONDS = 90
DEMO = [sys.executable, "-m", "monitor", "demo"]


def campaign(command: list[str]) -> dict[str, Any] | None:
    """The campaign report as JSON, None while the database is not there yet."""
    done = subprocess.run([*command, "--format", "json"], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_campaign_report_on_the_demo_shows_the_seeded_week_exactly(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as stderr:
        demo = subprocess.Popen(
            [*DEMO, "--port", str(port), "--workdir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = clock.monotonic() + BACKFILL_SECONDS
        command: list[str] | None = None
        report = None
        while clock.monotonic() < deadline:
            clock.sleep(1)
            if command is None:
                found = re.search(r"^  campaign +(.+)$", log.read_text(), re.MULTILINE)
                command = shlex.split(found.group(1)) if found else None
                continue
            report = campaign(command)
            if report is not None and report["figures"]["posts"] >= POSTS:
                break
        assert command is not None, f"no campaign command printed:\n{log.read_text()[-3000:]}"
        # The API gives the same JSON (the demo's token reads every brand).
        query = urlencode({"tag": "#AcmeJobs", "since": command[-3], "until": command[-1]})
        request = Request(
            f"http://127.0.0.1:{port}/api/v1/campaign?{query}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        with urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    assert report is not None, f"no campaign figures in time:\n{log.read_text()[-3000:]}"
    # The scenario, seeded on a fake of its own on the demo's day (its --until, in the brand's
    # zone), so a run across midnight compares the same week: what the demo's week holds.
    demo_day = datetime.combine(date.fromisoformat(command[-1]), time(12), ZONE)
    week = seed_campaign(
        FakeMastodon(owner=BRAND_ACCOUNT, access_token=MASTODON_TOKEN), now=demo_day
    )
    assert (str(week.first_day), str(week.last_day + timedelta(days=1))) == (
        command[-3],
        command[-1],
    )
    figures = report["figures"]
    assert {k: figures[k] for k in ("posts", "authors", "brand_posts", "broadcasts")} == {
        "posts": week.posts,
        "authors": week.authors,
        "brand_posts": week.brand_posts,
        "broadcasts": week.broadcasts,
    }
    assert (figures["chatter"], figures["interactions"]) == (week.chatter, week.interactions)
    assert (week.posts, week.broadcasts, week.interactions) == (639, 96, 3)  # the known shape
    # None followed up: all three still wait, past due.
    assert figures["followed_up"] == week.answered == 0
    assert (figures["waiting"], figures["breached"]) == (3, 3)
    assert len(report["waiting"]) == 3
    assert all(w["permalink"].startswith("http://127.0.0.1:") for w in report["waiting"])
    # The boosts of vacancies and the brand's answers to @-mentions are not campaign posts.
    assert [s["source"] for s in report["sources"]] == ["acme-mastodon"]
    assert answer["figures"] == {**figures, "compliance": answer["figures"]["compliance"]}
    assert answer["sources"] == report["sources"]
    assert [w["permalink"] for w in answer["waiting"]] == [
        w["permalink"] for w in report["waiting"]
    ]
