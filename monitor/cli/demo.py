"""`webcare-monitor demo`: the CLI part; the demo itself is monitor/demo.py."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from monitor.cli.common import configure_from

if TYPE_CHECKING:
    from monitor.cli.common import SubParsers


def cmd_demo(args: argparse.Namespace) -> int:
    """`demo [--port N]`: fake platforms + the real service on a generated config."""
    # Imported here: the fake platforms are only needed by this subcommand.
    from monitor.demo import run_demo

    run_demo(port=args.port, workdir=args.workdir, host=args.host, configure=configure_from)
    return 0


def add_parser(subparsers: SubParsers) -> None:
    """Register the `demo` subcommand."""
    demo = subparsers.add_parser("demo", help="run against built-in fake Facebook servers")
    demo.add_argument("--port", type=int, default=9464, help="HTTP port (default 9464)")
    demo.add_argument(
        "--host", default="127.0.0.1", help="listen address (default 127.0.0.1; 0.0.0.0 in Docker)"
    )
    demo.add_argument("--workdir", default=None, help="where to write config and database")
    demo.set_defaults(func=cmd_demo)
