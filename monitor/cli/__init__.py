"""Command line: the `webcare-monitor` parser and entry point; one module per subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.cli import audit, check_config, db, demo, privacy, report, roster, run, tokens


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="webcare-monitor",
        description="Measures how fast brands answer consumers on Facebook pages and forums.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    # In this order in --help.
    for subcommand in (run, demo, check_config, report, roster, tokens, audit, privacy, db):
        subcommand.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `webcare-monitor` console script."""
    from monitor.store import StoreInUse
    from monitor.web.server import ListenError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (ListenError, StoreInUse) as err:  # the operator's one line, no traceback
        print(f"webcare-monitor: {err}", file=sys.stderr)
        return 2
    return result
