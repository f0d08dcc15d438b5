"""The demo's printed links work as printed: Chromium opens the queue link and sees items."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

import orjson
import pytest

from tests.e2e.cdp import Browser, chromium_path
from tests.e2e.test_restart import free_port


def banner_links(log: Path, deadline: float) -> dict[str, str]:
    """The queue and report-API links of the demo's banner, once it is printed."""
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace")
        queue = re.search(r"queue page\s+(\S+)", text)
        api = re.search(r"report API\s+curl -H 'Authorization: Bearer (\S+)' '(\S+)'", text)
        command = re.search(r"^  report {3,}(.+)$", text, re.M)
        if queue and api and command:
            return {
                "queue": queue.group(1),
                "token": api.group(1),
                "api": api.group(2),
                "report": command.group(1),
            }
        time.sleep(0.2)
    raise AssertionError(f"no banner:\n{log.read_text()[-2000:]}")


async def test_the_printed_queue_link_shows_items_and_the_api_link_answers(
    tmp_path: Path,
) -> None:
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as stderr:
        demo = subprocess.Popen(  # noqa: ASYNC220 (started once, stopped in finally)
            [sys.executable, "-m", "monitor", "demo", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    browser = Browser(tmp_path / "profile")
    try:
        links = banner_links(log, time.monotonic() + 30)
        request = Request(links["api"], headers={"Authorization": f"Bearer {links['token']}"})
        items = 0
        for _ in range(80):  # the banner comes before the listener opens and the first poll
            try:
                with urlopen(request, timeout=10) as response:  # noqa: ASYNC210
                    report = orjson.loads(response.read())
            except URLError:
                report = {"rows": []}
            totals = [r["items"] for r in report["rows"] if r["source"] == r["brand"] == "*"]
            items = sum(totals)
            if items:
                break
            await asyncio.sleep(0.25)
        assert items > 0, "the printed report link never showed the demo's items"
        # The printed command, pasted as is: the seeded week and today, local days.
        pasted = subprocess.run(  # noqa: ASYNC221 (a short CLI run)
            shlex.split(links["report"]), capture_output=True, text=True, timeout=60, check=False
        )
        assert pasted.returncode == 0, pasted.stderr
        total = next(b for b in pasted.stdout.split("\n\n") if b.startswith("all sources (all"))
        assert int(total.splitlines()[1].split()[1]) >= items  # the `items` line
        await browser.start()
        cards = 0
        for _ in range(40):  # the first poll stores the seeded week within seconds
            await browser.goto(links["queue"])
            assert not await browser.evaluate("!!document.querySelector('form#login')")
            cards = await browser.evaluate("document.querySelectorAll('article.card').length")
            if cards:
                break
            await asyncio.sleep(0.5)
        assert cards > 0, "the queue page the demo printed lists nothing"
    finally:
        await browser.close()
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)  # a loaded CI machine stops it slower than the 0.5 s by hand
