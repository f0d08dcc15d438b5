"""The command line as an operator uses it: exit codes and messages."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BROKEN = """
database_url = "sqlite+aiosqlite:///x.db"
[calendars.office]
timezone = "Europe/Amstredam"
[[sources]]
type = "facebook_page"
name = "ok"
brand = "acme"
page_id = "1"
access_token = "t"
[[sources]]
type = "facebook_page"
name = "second"
brand = "acme"
access_token = "t"
poll_interval = "soon"
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=60
    )


def test_check_config_reports_all_three_mistakes_with_key_paths(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN, encoding="utf-8")
    result = run_cli("check-config", "-c", str(path))
    assert result.returncode == 1
    assert "3 problems" in result.stderr
    assert "calendars.office.timezone: unknown IANA time zone 'Europe/Amstredam'" in result.stderr
    assert "sources[1].page_id: missing: this key is required (page_id)" in result.stderr
    assert "sources[1].poll_interval: invalid duration 'soon'" in result.stderr


def test_run_refuses_a_broken_config_with_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN, encoding="utf-8")
    result = run_cli("run", "-c", str(path))
    assert result.returncode == 1
    assert "sources[1].page_id" in result.stderr


def test_check_config_accepts_a_good_config_and_db_upgrade_creates_the_schema(
    tmp_path: Path,
) -> None:
    path = tmp_path / "good.toml"
    path.write_text(
        f'database_url = "sqlite+aiosqlite:///{tmp_path}/w.db"\n'
        '[[sources]]\ntype = "facebook_page"\nname = "ok"\nbrand = "acme"\n'
        'page_id = "1"\naccess_token = "t"\n',
        encoding="utf-8",
    )
    result = run_cli("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK (1 source: ok)" in result.stdout
    upgrade = run_cli("db", "upgrade", "-c", str(path))
    assert upgrade.returncode == 0, upgrade.stderr
    assert (tmp_path / "w.db").exists()


@pytest.mark.parametrize("command", ["run", "demo"])
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if command == "run":
            path = tmp_path / "c.toml"
            path.write_text(
                f'database_url = "sqlite+aiosqlite:///{tmp_path}/c.db"\n[http]\nport = {port}\n'
                '[[sources]]\ntype = "facebook_page"\nname = "a"\nbrand = "b"\npage_id = "1"\n'
                'access_token = "t"\napi_base_url = "http://127.0.0.1:9/v26.0"\n',
                encoding="utf-8",
            )
            result = run_cli("run", "-c", str(path))
        else:
            result = run_cli("demo", "--port", str(port), "--workdir", str(tmp_path))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"webcare-monitor: cannot listen on 127.0.0.1:{port}: the port is in use" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("command", "option", "says"),
    [
        (["report"], "--since", "brand's time zone"),
        (["db", "recompute"], "--since", "brand's local time"),
        (["roster"], "--at", "roster's time"),
    ],
)
def test_help_says_a_time_without_an_offset_is_local(
    command: list[str], option: str, says: str
) -> None:
    help_text = " ".join(run_cli(*command, "--help").stdout.split())
    assert option in help_text and says in help_text
    assert "UTC unless" not in help_text


def test_a_second_service_on_the_same_sqlite_file_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    """SQLite serves one instance: the second `run` says so instead of polling and alerting
    a second time; `report` may still read while the first runs."""

    def config(name: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'database_url = "sqlite+aiosqlite:///{tmp_path}/shared.db"\n'
            "[http]\nport = 0\n"
            '[[sources]]\ntype = "facebook_page"\nname = "a"\nbrand = "b"\npage_id = "1"\n'
            'access_token = "t"\napi_base_url = "http://127.0.0.1:9/v26.0"\n',
            encoding="utf-8",
        )
        return path

    first = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "-c", str(config("first"))],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stderr is not None
        for line in first.stderr:  # started once it says where it listens
            if '"listening"' in line:
                break
        second = run_cli("run", "-c", str(config("second")))
        assert second.returncode == 2, second.stderr[-2000:]
        assert "Traceback" not in second.stderr
        assert second.stderr.strip().splitlines()[-1] == (
            f"webcare-monitor: another webcare-monitor is running on {tmp_path}/shared.db:"
            " SQLite serves one instance (stop the other one, or use PostgreSQL to run several)"
        )
        assert run_cli("report", "-c", str(config("first"))).returncode == 0
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert first.returncode == 0
    again = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config("second"))])
    try:  # the file is free once the first is gone
        time.sleep(3)
        assert again.poll() is None
    finally:
        again.terminate()
        again.wait(timeout=30)
