"""`webcare-monitor run`: the service."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pydantic import ValidationError

from monitor.cli.common import configure_from, load_or_exit
from monitor.config import ClusterConfig, Config

if TYPE_CHECKING:
    from monitor.cli.common import SubParsers
    from monitor.reload import Overrides


def serve(config: Config, path: str, overrides: Overrides | None = None) -> None:
    """Run the service until SIGINT/SIGTERM; SIGHUP reloads `path` (monitor/reload.py), with
    the command line's `overrides` applied to the file each time."""
    from monitor.reload import Overrides, serve_reloadable

    overrides = overrides or Overrides()
    config = overrides.apply(config)
    configure_from(config)
    serve_reloadable(path, config, overrides)


def cmd_run(args: argparse.Namespace) -> int:
    """`run -c CONFIG [--instance NAME] [--port PORT]`: the service."""
    from monitor.reload import Overrides

    overrides = Overrides(instance=args.instance, port=args.port)
    serve(load_or_exit(args.config), args.config, overrides)
    return 0


def instance_arg(value: str) -> str:
    """An instance name as `[cluster] instance` accepts it (1 to 100 characters)."""
    try:
        ClusterConfig(instance=value)
    except ValidationError as err:
        raise argparse.ArgumentTypeError(f"{value!r}: {err.errors()[0]['msg'].lower()}") from None
    return value


def port_arg(value: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535)")
    return port


def add_parser(subparsers: SubParsers) -> None:
    """Register the `run` subcommand."""
    run = subparsers.add_parser("run", help="run the service")
    run.add_argument("-c", "--config", required=True, help="TOML config file")
    run.add_argument(
        "--instance",
        type=instance_arg,
        metavar="NAME",
        help="this instance's name among several on one PostgreSQL database (sets [cluster]"
        " instance; default: the config's, else $WEBCARE_INSTANCE, else the host name);"
        " unique per running instance",
    )
    run.add_argument(
        "--port",
        type=port_arg,
        metavar="PORT",
        help="listen on PORT instead of [http] port, so instances on one host can share one"
        " config file; kept across reloads",
    )
    run.set_defaults(func=cmd_run)
