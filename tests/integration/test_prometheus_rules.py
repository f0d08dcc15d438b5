"""Issue 8, acceptance 1: the Prometheus rules and the sample configs, checked by their own tools.

promtool (Debian `prometheus`) checks and unit-tests the rules in deploy/prometheus/ and checks
the sample prometheus.yml; amtool (Debian `prometheus-alertmanager`) checks alertmanager.yml and
its routing. Skipped where the tools are missing, except in CI where they must be installed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_dashboards import require_binary

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
TEST_FILE = PROMETHEUS_DIR / "tests" / "webcare-alerts.test.yml"
ALERTS = PROMETHEUS_DIR / "rules" / "webcare-alerts.yml"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool", "prometheus")


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_binary("amtool", "prometheus-alertmanager")


def test_rules_pass_promtool_check(promtool: str) -> None:
    assert [p.name for p in RULE_FILES] == ["webcare-alerts.yml", "webcare-recording.yml"]
    result = run(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert len(TEST_FILES) == 2
    result = run(promtool, "test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


def test_every_alert_has_a_unit_test_that_sees_it_fire() -> None:
    alerts = re.findall(r"^\s+- alert: (\w+)$", ALERTS.read_text(), re.M)
    assert len(alerts) == 9
    tests = "".join(path.read_text() for path in TEST_FILES)
    for alert in alerts:
        firing = re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels:", tests, re.M)
        assert firing, f"no unit test shows {alert} firing"


def _only_test(name: str) -> str:
    """The unit-test file reduced to the one test group called `name` (promtool has no filter)."""
    text = TEST_FILE.read_text()
    head, _, body = text.partition("\ntests:\n")
    groups = body.split("\n  - name: ")
    chosen = [g for g in groups if g.startswith(name)]
    assert len(chosen) == 1, name
    return f"{head}\ntests:\n  - name: {chosen[0]}\n"


def test_the_volume_guard_is_what_keeps_a_quiet_page_from_paging(
    promtool: str, tmp_path: Path
) -> None:
    """Mutation check: without the minimum-volume guard the quiet-page test must fail."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    for rules in RULE_FILES:
        text = rules.read_text()
        if rules == ALERTS:
            assert text.count(">= 10") == 2
            text = text.replace(">= 10", ">= 0")
        (tmp_path / "rules" / rules.name).write_text(text)
    test = tmp_path / "tests" / "quiet.test.yml"
    test.write_text(_only_test("a quiet page does not page"))
    result = run(promtool, "test", "rules", test)
    assert result.returncode != 0, result.stdout
    assert "alertname: WebcareSLOFastBurn" in result.stdout + result.stderr
    # ... while the same test passes with the guard in place.
    for rules in RULE_FILES:
        (tmp_path / "rules" / rules.name).write_text(rules.read_text())
    result = run(promtool, "test", "rules", test)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sample_prometheus_config_passes_promtool_check(promtool: str) -> None:
    result = run(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The config loads every rule file of the directory.
    for rules in RULE_FILES:
        assert f"Checking {PROMETHEUS_DIR / 'rules' / rules.name}" in result.stdout or (
            f"rules/{rules.name}" in result.stdout
        ), result.stdout


def test_sample_alertmanager_config_passes_amtool(amtool: str) -> None:
    config = PROMETHEUS_DIR / "alertmanager.yml"
    result = run(amtool, "check-config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 inhibit rules" in result.stdout
    routes = {
        "webcare-pager": ["severity=page", "alertname=WebcareSLOFastBurn"],
        "webcare-tickets": ["severity=ticket", "alertname=WebcareSLOSlowBurn"],
    }
    for receiver, labels in routes.items():
        result = run(
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            f"--verify.receivers={receiver}",
            *labels,
        )
        assert result.returncode == 0, result.stdout + result.stderr
