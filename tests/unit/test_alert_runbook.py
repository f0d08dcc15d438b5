"""Issue 15: every alerting rule says what happened, why it matters, and where its runbook is.

The rules file is parsed without a YAML library (the test environment has none): each
`- alert:` item up to the next one, its `annotations:` mapping read by indentation, folded
(`>-`) values joined. promtool (tests/integration/test_prometheus_rules.py) checks the file is
valid YAML and valid rules; this test checks what operators read.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.test_docs import anchors

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "rules" / "webcare-alerts.yml"
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.test.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_PREFIX = "docs/runbook.md#"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def alert_annotations(text: str) -> dict[str, dict[str, str]]:
    """Each alert's annotations, by alert name."""
    result: dict[str, dict[str, str]] = {}
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^\s+- alert: \w+$", line)]
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(lines)
        name = lines[start].split("alert:")[1].strip()
        block = lines[start + 1 : end]
        annotations: dict[str, str] = {}
        heads = [i for i, line in enumerate(block) if line.strip() == "annotations:"]
        assert len(heads) <= 1, name
        if heads:
            base = _indent(block[heads[0]])
            key: str | None = None
            for line in block[heads[0] + 1 :]:
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if _indent(line) <= base:
                    break
                match = re.match(r"^\s+(\w+):\s*(.*)$", line)
                if match and _indent(line) == base + 2:
                    key, value = match.groups()
                    annotations[key] = "" if value in (">-", ">", "|", "|-") else _unquote(value)
                elif key is not None:
                    annotations[key] = f"{annotations[key]} {line.strip()}".strip()
        result[name] = annotations
    return result


def test_the_parser_reads_the_rules_file() -> None:
    alerts = alert_annotations(ALERTS.read_text(encoding="utf-8"))
    assert len(alerts) == 9
    assert alerts["WebcareMonitorDown"]["summary"] == (
        "webcare-monitor {{ $labels.instance }} cannot be scraped"
    )
    assert alerts["WebcareMonitorDown"]["description"].startswith("Prometheus has not reached")


def test_every_alert_has_a_summary_a_description_and_a_runbook_url() -> None:
    for name, found in alert_annotations(ALERTS.read_text(encoding="utf-8")).items():
        for key in ("summary", "description", "runbook_url"):
            assert found.get(key, "").strip(), f"{name} has no {key} annotation"
        assert found["runbook_url"] == f"{RUNBOOK_PREFIX}{name.lower()}", name


def test_every_runbook_url_points_to_a_section_of_the_runbook() -> None:
    sections = anchors(RUNBOOK)
    for name, found in alert_annotations(ALERTS.read_text(encoding="utf-8")).items():
        anchor = found["runbook_url"].removeprefix(RUNBOOK_PREFIX)
        assert anchor in sections, f"{name}: docs/runbook.md has no heading #{anchor}"


def test_the_runbook_has_a_section_for_every_alert_and_no_other() -> None:
    text = re.sub(r"```.*?```", "", RUNBOOK.read_text(encoding="utf-8"), flags=re.DOTALL)
    alerts = set(alert_annotations(ALERTS.read_text(encoding="utf-8")))
    assert set(re.findall(r"^## (\w+)$", text, re.M)) == alerts
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        for part in ("**What it means.**", "**What to check first.**", "**How to fix"):
            assert part in section, f"runbook section {section.split()[0]}: no {part}"


def test_the_rule_unit_tests_expect_the_runbook_urls() -> None:
    """promtool compares exp_annotations exactly; the rule tests name each alert's runbook."""
    seen = 0
    for path in RULE_TESTS:
        alert = None
        for line in path.read_text(encoding="utf-8").splitlines():
            if match := re.match(r"^\s+alertname: (\w+)$", line):
                alert = match.group(1)
            elif match := re.match(r"^\s+runbook_url: \"([^\"]*)\"$", line):
                assert alert is not None, path.name
                assert match.group(1) == f"{RUNBOOK_PREFIX}{alert.lower()}", (path.name, alert)
                seen += 1
            elif line.strip() == "exp_annotations:":
                seen -= 1  # every expected alert names its runbook_url
    assert seen == 0


def test_the_rules_and_the_metrics_doc_say_how_to_prefix_the_relative_url() -> None:
    assert "prefix it with" in ALERTS.read_text(encoding="utf-8")
    metrics_doc = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert "runbook_url" in metrics_doc and "docs/runbook.md" in metrics_doc
