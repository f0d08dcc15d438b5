"""`webcare-monitor run`: the service."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from monitor.cli.common import configure_from, load_or_exit
from monitor.config import Config

if TYPE_CHECKING:
    from monitor.cli.common import SubParsers


def serve(config: Config, path: str) -> None:
    """Run the service until SIGINT/SIGTERM; SIGHUP reloads `path` (monitor/reload.py)."""
    from monitor.reload import serve_reloadable

    configure_from(config)
    serve_reloadable(path, config)


def cmd_run(args: argparse.Namespace) -> int:
    """`run -c CONFIG`: the service."""
    serve(load_or_exit(args.config), args.config)
    return 0


def add_parser(subparsers: SubParsers) -> None:
    """Register the `run` subcommand."""
    run = subparsers.add_parser("run", help="run the service")
    run.add_argument("-c", "--config", required=True, help="TOML config file")
    run.set_defaults(func=cmd_run)
