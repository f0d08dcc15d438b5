"""Shared fixtures: a throwaway PostgreSQL server and a `database_url` for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

POSTGRES_URL_ENV = "WEBCARE_TEST_POSTGRES_URL"
REQUIRE_ENV = "WEBCARE_REQUIRE_POSTGRES"
PG_LIB = Path("/usr/lib/postgresql")
PG_OS_USER = "postgres"
# fsync & co. off: the data dir is thrown away, so durability only costs time.
_FAST_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")
_START_ATTEMPTS = 3


@dataclass(frozen=True, kw_only=True)
class PostgresServer:
    """A reachable PostgreSQL server; `url` points at its maintenance database."""

    url: URL
    origin: str

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL (asyncpg driver) for database `name` on this server."""
        url = self.url.set(drivername="postgresql+asyncpg", database=name)
        return url.render_as_string(hide_password=False)

    def create_database(self) -> str:
        """Create a fresh, uniquely named database and return its name."""
        name = f"webcare_test_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, disconnecting anything a test left open."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def list_databases(self) -> list[str]:
        """Names of the databases on the server (for tests of this fixture)."""
        rows = self._admin("SELECT datname FROM pg_database")
        return [row["datname"] for row in rows]

    def _admin(self, sql: str) -> list[Any]:
        # CREATE/DROP DATABASE cannot run in a transaction, so use a plain asyncpg connection.
        # It runs in its own thread with its own loop: fixtures may be set up while a test's
        # event loop (pytest-asyncio) is current, and asyncio.run() there would clobber it.
        async def run() -> list[Any]:
            conn = await asyncpg.connect(
                host=self.url.host,
                port=self.url.port or 5432,
                user=self.url.username,
                password=self.url.password,
                database=self.url.database or "postgres",
                timeout=30,
            )
            try:
                return list(await conn.fetch(sql))
            finally:
                await conn.close()

        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, run()).result()


def _version_key(initdb: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", initdb.parent.parent.name)) or (0,)


def find_pg_bindir() -> Path | None:
    """The bin dir of the newest installed PostgreSQL server, if any."""
    candidates = sorted(PG_LIB.glob("*/bin/initdb"), key=_version_key)
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _LocalServer:
    """initdb + pg_ctl in a temp dir; as root the commands run as the `postgres` OS user."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        # Not pytest's tmp_path: its parents are 0700 root-owned and postgres could not enter.
        self.root = Path(tempfile.mkdtemp(prefix="webcare-pg-"))
        if self.as_root:
            shutil.chown(self.root, user=PG_OS_USER, group=PG_OS_USER)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.started = False

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        # initdb and pg_ctl refuse to run as root.
        prefix = ["runuser", "-u", PG_OS_USER, "--"] if self.as_root else []
        return subprocess.run(
            [*prefix, str(self.bindir / tool), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def start(self) -> URL:
        init = self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}{init.stderr}")
        for _attempt in range(_START_ATTEMPTS):
            # Another xdist worker may grab the same free port first; then try another one.
            self.port = _free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-p {self.port}",
                    f"-k {self.root}",
                    *(f"-c {s}" for s in _FAST_SETTINGS),
                ]
            )
            started = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                "-o", options, "start",
            )  # fmt: skip
            if started.returncode == 0:
                self.started = True
                return URL.create(
                    "postgresql+asyncpg",
                    username="postgres",
                    host="127.0.0.1",
                    port=self.port,
                    database="postgres",
                )
        log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed:\n{started.stdout}{started.stderr}\n{log}")

    def stop(self) -> None:
        try:
            if self.started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _postgres_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get(REQUIRE_ENV) == "1"


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail where PostgreSQL tests must run (CI, WEBCARE_REQUIRE_POSTGRES=1)."""
    if _postgres_required():
        pytest.fail(f"{reason} (PostgreSQL is required: CI or {REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def _describe_postgres() -> str:
    if os.environ.get(POSTGRES_URL_ENV):
        return f"postgres: server from {POSTGRES_URL_ENV}"
    bindir = find_pg_bindir()
    if bindir is not None:
        return f"postgres: throwaway server from {bindir}"
    required = " (required: tests will fail)" if _postgres_required() else " (tests skipped)"
    return f"postgres: no server binaries under {PG_LIB}{required}"


def pytest_report_header() -> str:
    """Say up front which PostgreSQL the run will use."""
    return _describe_postgres()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session: $WEBCARE_TEST_POSTGRES_URL or a throwaway one."""
    external = os.environ.get(POSTGRES_URL_ENV)
    if external:
        yield PostgresServer(url=make_url(external), origin=POSTGRES_URL_ENV)
        return
    bindir = find_pg_bindir()
    if bindir is None:
        _unavailable(
            f"no PostgreSQL server binaries ({PG_LIB}/*/bin/initdb); set {POSTGRES_URL_ENV}"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _unavailable("running as root but runuser is missing, cannot start PostgreSQL")
    server = _LocalServer(bindir)
    try:
        url = server.start()
        yield PostgresServer(url=url, origin=str(bindir))
    finally:
        server.stop()


@pytest.fixture
def postgres_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (asyncpg URL), dropped after the test."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.database_url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database per test, once on SQLite (a file in tmp_path) and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/test.db"
    # Looked up lazily so a SQLite-only run (-m "not postgres") never starts a server.
    url: str = request.getfixturevalue("postgres_database_url")
    return url


# Tests that run real servers on the wall clock (Prometheus, the demo, Chromium, a wheel
# build, restarts, deadline and escalation timing). On a 2-core machine two of them at once
# starve each other and time out; in one xdist group they run one after another on one
# worker while the other worker takes the rest of the suite.
WALL_CLOCK_HEAVY = (
    "tests/integration/test_dashboards_prometheus.py",
    "tests/integration/test_report_sql.py",
    "tests/e2e/test_deploy_image.py",
    "tests/e2e/test_queue_page.py",
    "tests/e2e/test_demo.py",
    "tests/e2e/test_restart.py",
    "tests/e2e/test_reload.py",
    "tests/e2e/test_alerts.py",
    "tests/e2e/test_escalation.py",
    "tests/e2e/test_handover.py",
    "tests/e2e/test_deadlines.py",
    "tests/e2e/test_privacy_logs.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the wall-clock-heavy tests in one xdist group (see WALL_CLOCK_HEAVY)."""
    for item in items:
        if any(str(item.path).endswith(path) for path in WALL_CLOCK_HEAVY):
            item.add_marker(pytest.mark.xdist_group("wall_clock_heavy"))
