"""`webcare-monitor check-config`: validate a config file."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from monitor.cli.common import load_or_exit
from monitor.words import counted

if TYPE_CHECKING:
    from monitor.cli.common import SubParsers


def cmd_check_config(args: argparse.Namespace) -> int:
    """`check-config -c CONFIG`: validate and list every problem."""
    config = load_or_exit(args.config)
    names = ", ".join(s.name for s in config.sources)
    print(f"{args.config}: OK ({counted(len(config.sources), 'source')}: {names})")
    return 0


def add_parser(subparsers: SubParsers) -> None:
    """Register the `check-config` subcommand."""
    check = subparsers.add_parser("check-config", help="validate a config file")
    check.add_argument("-c", "--config", required=True)
    check.set_defaults(func=cmd_check_config)
