"""`webcare-monitor db`: database maintenance (upgrade, recompute)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from monitor.cli.common import brand_zone, configure_from, load_or_exit

if TYPE_CHECKING:
    from monitor.cli.common import SubParsers


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """`db upgrade -c CONFIG`: apply migrations."""
    from monitor.store import create_engine, upgrade

    config = load_or_exit(args.config)

    async def run() -> None:
        engine = create_engine(config.database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print("database is at the latest schema")
    return 0


def cmd_db_recompute(args: argparse.Namespace) -> int:
    """`db recompute -c CONFIG --since ISO`: re-derive items after a calendar/policy change."""
    from monitor.app import source_settings
    from monitor.progress import Progress
    from monitor.recompute import recompute
    from monitor.report import parse_instant
    from monitor.store import Store, create_engine, upgrade

    config = load_or_exit(args.config)
    try:
        # Without an offset: the (first) brand's local time, like report --since.
        since = parse_instant(args.since, brand_zone(config, None))
    except ValueError as err:
        raise SystemExit(f"--since: {err}") from err

    configure_from(config)
    # A bar per source on a terminal; otherwise log lines (done/total, rate, ETA).
    terminal = sys.stderr if sys.stderr.isatty() else None
    shown: dict[str, Progress] = {}

    def progress(source: str, done: int, total: int) -> None:
        if source not in shown:
            shown[source] = Progress(
                "recompute", source, total=total, unit="items", terminal=terminal
            )
        shown[source].update(done)
        if done == total:
            shown[source].finish()

    async def run() -> None:
        engine = create_engine(config.database_url)
        try:
            await upgrade(engine)
            result = await recompute(
                Store(engine), source_settings(config), since=since, on_progress=progress
            )
        finally:
            await engine.dispose()
        print(
            f"recomputed {result.examined} items since {since.isoformat()}: "
            f"{result.changed} changed"
        )

    asyncio.run(run())
    return 0


def add_parser(subparsers: SubParsers) -> None:
    """Register the `db` subcommand and its `upgrade` and `recompute`."""
    db = subparsers.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_up = db_sub.add_parser("upgrade", help="apply migrations")
    db_up.add_argument("-c", "--config", required=True, help="TOML config file")
    db_up.set_defaults(func=cmd_db_upgrade)
    db_re = db_sub.add_parser("recompute", help="re-derive items after a calendar/policy change")
    db_re.add_argument("-c", "--config", required=True, help="TOML config file")
    db_re.add_argument(
        "--since",
        required=True,
        help="items created from then on; ISO 8601, without an offset the brand's local time",
    )
    db_re.set_defaults(func=cmd_db_recompute)
