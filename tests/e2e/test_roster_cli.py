"""`webcare-monitor roster` end to end: a real process on a temp config (and .ics file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOURCES = """
[[sources]]
type = "facebook_page"
name = "fb-acme"
brand = "acme"
page_id = "1"
access_token = "t"

[[sources]]
type = "facebook_page"
name = "fb-globex"
brand = "globex"
page_id = "2"
access_token = "t"
"""

ROSTER = """
[roster]
timezone = "Europe/Amsterdam"
lead = "lars"

[[roster.shifts]]
when = "sat 22:00-06:00"
student = "nina"
backup = "omar"
lead = "lea"

[[roster.shifts]]
when = "sun 06:00-14:00"
student = "mo"

[[roster.overrides]]
date = 2026-10-25
hours = "06:00-08:00"
student = "swap"
sources = ["fb-globex"]
"""

ICS = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Google Inc//Google Calendar 70.9054//EN
BEGIN:VEVENT
DTSTART;TZID=Europe/Amsterdam:20261024T180000
DTEND;TZID=Europe/Amsterdam:20261024T220000
UID:evening@google.com
SUMMARY:Eva
CATEGORIES:acme
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=60
    )


def write_config(tmp_path: Path, roster: str = ROSTER, ics: str | None = None) -> str:
    if ics is not None:
        # Inside [roster], before its sub-tables.
        roster = roster.replace('lead = "lars"\n', f'lead = "lars"\nics = "{ics}"\n')
    path = tmp_path / "config.toml"
    path.write_text(
        f'database_url = "sqlite+aiosqlite:///{tmp_path}/w.db"\n{roster}{SOURCES}',
        encoding="utf-8",
    )
    return str(path)


def test_who_is_on_duty_at_the_repeated_hour_per_source(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    # 2026-10-25 00:30 UTC is the first 02:30 (CEST) of the fall-back night.
    result = run_cli("roster", "-c", config, "--at", "2026-10-25T00:30Z")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "On duty at 2026-10-25T02:30+02:00 (Europe/Amsterdam; 2026-10-25T00:30:00+00:00):",
        "  fb-acme [acme]: student nina, backup omar, lead lea",
        "    next gap: 2026-10-25T14:00+01:00 to 2026-10-31T22:00+01:00",
        "  fb-globex [globex]: student nina, backup omar, lead lea",
        "    next gap: 2026-10-25T14:00+01:00 to 2026-10-31T22:00+01:00",
    ]
    # Without an offset, --at is the roster's wall clock (Europe/Amsterdam).
    local = run_cli("roster", "-c", config, "--at", "2026-10-24T20:00", "--source", "fb-acme")
    assert local.stdout.splitlines()[0] == (
        "On duty at 2026-10-24T20:00+02:00 (Europe/Amsterdam; 2026-10-24T18:00:00+00:00):"
    )
    # 05:30 CET: the night has its extra hour; an offset in --at is honoured.
    later = run_cli("roster", "-c", config, "--at", "2026-10-25T05:30+01:00", "--source", "fb-acme")
    assert later.returncode == 0, later.stderr
    assert "fb-acme [acme]: student nina" in later.stdout
    assert "fb-globex" not in later.stdout


def test_override_brand_filter_and_a_gap_now(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    at = "2026-10-25T06:30+01:00"
    result = run_cli("roster", "-c", config, "--at", at, "--brand", "globex")
    assert result.returncode == 0, result.stderr
    assert "fb-globex [globex]: student swap, backup -, lead lars" in result.stdout
    assert "fb-acme" not in result.stdout
    gap = run_cli("roster", "-c", config, "--at", "2026-10-26T12:00Z")
    assert gap.returncode == 0, gap.stderr
    assert "fb-acme [acme]: nobody on duty (lead: lars)" in gap.stdout
    assert "gap now, until 2026-10-31T22:00+01:00" in gap.stdout


def test_ics_file_events_are_used(tmp_path: Path) -> None:
    ics = tmp_path / "team.ics"
    ics.write_text(ICS, encoding="utf-8", newline="")
    config = write_config(tmp_path, ics=str(ics))
    result = run_cli("roster", "-c", config, "--at", "2026-10-24T17:00Z")  # 19:00 CEST
    assert result.returncode == 0, result.stderr
    assert "fb-acme [acme]: student Eva, backup -, lead lars" in result.stdout
    assert "fb-globex [globex]: nobody on duty" in result.stdout


def test_unreadable_ics_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    config = write_config(tmp_path, ics=f"{tmp_path}/missing.ics")
    result = run_cli("roster", "-c", config, "--at", "2026-10-25T00:30Z")
    assert result.returncode == 0, result.stderr
    assert "warning: .ics" in result.stderr and "missing.ics" in result.stderr
    assert "student nina" in result.stdout


def test_no_at_means_now_and_no_roster_means_gaps(tmp_path: Path) -> None:
    config = write_config(tmp_path, roster="")
    result = run_cli("roster", "-c", config)
    assert result.returncode == 0, result.stderr
    assert "fb-acme [acme]: nobody on duty (lead: -)" in result.stdout
    assert "gap now, until beyond the 7-day look-ahead" in result.stdout


def test_bad_at_or_unknown_source_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    bad = run_cli("roster", "-c", config, "--at", "next tuesday")
    assert bad.returncode == 2
    assert "roster: error: invalid time 'next tuesday'" in bad.stderr
    unknown = run_cli("roster", "-c", config, "--source", "fb-nope")
    assert unknown.returncode == 2
    assert "unknown source 'fb-nope' (configured: fb-acme, fb-globex)" in unknown.stderr
    mismatch = run_cli("roster", "-c", config, "--source", "fb-acme", "--brand", "globex")
    assert mismatch.returncode == 2


def test_invalid_roster_entries_are_config_errors_with_key_paths(tmp_path: Path) -> None:
    broken = """
[roster]
timezone = "Europe/Amstredam"
[[roster.shifts]]
when = "mon-fri 17:00-23:00"
student = "ann"
[[roster.shifts]]
when = "fri 22:00-30:00"
student = "nick"
[[roster.overrides]]
student = "bob"
[[roster.overrides]]
date = 2026-10-25
hours = "6-8"
student = "swap"
"""
    config = write_config(tmp_path, roster=broken)
    result = run_cli("roster", "-c", config, "--at", "2026-10-25T00:30Z")
    assert result.returncode == 1
    assert "4 problems" in result.stderr
    assert "roster.timezone: unknown IANA time zone 'Europe/Amstredam'" in result.stderr
    assert "roster.shifts[1].when: invalid hours 'fri 22:00-30:00'" in result.stderr
    assert "roster.overrides[0]: give either `date`" in result.stderr
    assert "roster.overrides[1]: override on 2026-10-25: invalid hours '6-8'" in result.stderr
    assert result.stdout == ""
