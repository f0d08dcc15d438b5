"""`webcare-monitor demo` as a new user runs it: metrics within 30 s, promtool-clean."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.demo import TOKEN
from tests.e2e.test_restart import free_port


def fetch(url: str) -> str | None:
    try:
        with urlopen(url, timeout=2) as response:
            body: bytes = response.read()
            return body.decode()
    except (URLError, OSError):
        return None


def demo_ready(text: str | None) -> bool:
    if text is None:
        return False
    values = {
        (s.name, s.labels.get("period")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name in ("webcare_items_total", "webcare_first_response_seconds_count")
        or s.name == "webcare_source_up"
    }
    return (
        values.get(("webcare_items_total", "office_hours"), 0) > 0
        and values.get(("webcare_items_total", "after_hours"), 0) > 0
        and values.get(("webcare_first_response_seconds_count", "after_hours"), 0) > 0
        and values.get(("webcare_source_up", None)) == 1
    )


def test_demo_serves_populated_metrics_within_30_seconds(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as stderr:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "demo",
                "--port",
                str(port),
                "--workdir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 30
        text = None
        while time.monotonic() < deadline and not demo_ready(text):
            time.sleep(0.5)
            text = fetch(f"http://127.0.0.1:{port}/metrics")
        assert demo_ready(text), f"demo not ready in 30 s:\n{log.read_text()[-3000:]}"
        assert fetch(f"http://127.0.0.1:{port}/readyz") is not None
        promtool = shutil.which("promtool")
        if promtool is None:
            if os.environ.get("CI"):
                pytest.fail("promtool missing in CI (.ci/run installs the prometheus package)")
        else:
            check = subprocess.run(
                [promtool, "check", "metrics"], input=text, capture_output=True, text=True
            )
            assert check.returncode == 0, check.stdout + check.stderr
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=20)
    output = log.read_text()
    assert "webcare-monitor demo is running" in output
    assert '"event":"poll"' in output
    # The demo's token comes from a *_file secret: it is redacted like any other.
    assert TOKEN not in output
    assert demo.returncode == 0, output[-3000:]
    if promtool is None:
        pytest.skip(
            "promtool not installed: metrics format not checked (apt-get install prometheus)"
        )
