"""Command line: run, demo, check-config and db subcommands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.alerts.roster_cli import add_roster_parser
from monitor.config import Config, ConfigError, load_config
from monitor.logging import configure_logging
from monitor.report_cli import add_report_parser
from monitor.words import counted


def _load_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"{path}: {err.count()} in the config:", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(1) from err


def configure_from(config: Config) -> None:
    """Set up logging as the config says, with its secrets redacted."""
    configure_logging(level=config.log.level, fmt=config.log.format, secrets=config.secrets())


def serve(config: Config, path: str) -> None:
    """Run the service until SIGINT/SIGTERM; SIGHUP reloads `path` (monitor/reload.py)."""
    from monitor.reload import serve_reloadable

    configure_from(config)
    serve_reloadable(path, config)


def cmd_run(args: argparse.Namespace) -> int:
    """`run -c CONFIG`: the service."""
    serve(_load_or_exit(args.config), args.config)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """`check-config -c CONFIG`: validate and list every problem."""
    config = _load_or_exit(args.config)
    names = ", ".join(s.name for s in config.sources)
    print(f"{args.config}: OK ({counted(len(config.sources), 'source')}: {names})")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """`db upgrade -c CONFIG`: apply migrations."""
    from monitor.store import create_engine, upgrade

    config = _load_or_exit(args.config)

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
    from monitor.report_cli import brand_zone
    from monitor.store import Store, create_engine, upgrade

    config = _load_or_exit(args.config)
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


def cmd_demo(args: argparse.Namespace) -> int:
    """`demo [--port N]`: fake platforms + the real service on a generated config."""
    from monitor.demo import run_demo

    run_demo(port=args.port, workdir=args.workdir, host=args.host)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="webcare-monitor",
        description="Measures how fast brands answer consumers on Facebook pages and forums.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service")
    run.add_argument("-c", "--config", required=True, help="TOML config file")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="run against built-in fake Facebook servers")
    demo.add_argument("--port", type=int, default=9464, help="HTTP port (default 9464)")
    demo.add_argument(
        "--host", default="127.0.0.1", help="listen address (default 127.0.0.1; 0.0.0.0 in Docker)"
    )
    demo.add_argument("--workdir", default=None, help="where to write config and database")
    demo.set_defaults(func=cmd_demo)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("-c", "--config", required=True)
    check.set_defaults(func=cmd_check_config)
    add_report_parser(sub)
    add_roster_parser(sub)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_up = db_sub.add_parser("upgrade", help="apply migrations")
    db_up.add_argument("-c", "--config", required=True)
    db_up.set_defaults(func=cmd_db_upgrade)
    db_re = db_sub.add_parser("recompute", help="re-derive items after a calendar/policy change")
    db_re.add_argument("-c", "--config", required=True)
    db_re.add_argument("--since", required=True, help="ISO date/time (UTC unless an offset)")
    db_re.set_defaults(func=cmd_db_recompute)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `webcare-monitor` console script."""
    from monitor.web.server import ListenError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ListenError as err:
        print(f"webcare-monitor: {err}", file=sys.stderr)
        return 2
    return result
