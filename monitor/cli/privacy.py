"""`webcare-monitor privacy`: purge what is past retention; export or erase one consumer's data."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monitor.cli.common import load_or_exit

if TYPE_CHECKING:
    from monitor.audit import Actor
    from monitor.cli.common import SubParsers
    from monitor.config import Config
    from monitor.store import Store


def _run(config: Config, work: Callable[[Store], Awaitable[Any]]) -> Any:
    from monitor.store import Store, create_engine, upgrade

    async def run() -> Any:
        engine = create_engine(config.database_url)
        try:
            await upgrade(engine)
            return await work(Store(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _operator() -> Actor:
    from monitor.audit import Actor
    from monitor.cli.tokens import operator

    return Actor(name=operator(), via="cli", origin=socket.gethostname())


def cmd_purge(args: argparse.Namespace) -> int:
    """`privacy purge -c CONFIG`: purge now what the service would purge within the hour."""
    from monitor.privacy import purge_now

    config = load_or_exit(args.config)
    done = _run(config, lambda store: purge_now(store, config, datetime.now(UTC)))
    print(f"purged {done.messages} messages, {done.items} items, {done.alerts} alerts")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`privacy export -c CONFIG --author ID_OR_NAME`: what we hold on a person, as JSON."""
    from monitor.audit import record_privacy
    from monitor.privacy import export_author

    config = load_or_exit(args.config)

    async def work(store: Store) -> dict[str, Any]:
        now = datetime.now(UTC)
        found = await export_author(store, config, args.author)
        await record_privacy(store, "export", found, actor=_operator(), at=now)
        return found

    found = _run(config, work)
    json.dump(found, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    """`privacy erase -c CONFIG --author ID_OR_NAME`: text and identity gone everywhere."""
    from monitor.audit import erasure_entry
    from monitor.privacy import erase_author

    config = load_or_exit(args.config)

    async def work(store: Store) -> Any:
        now = datetime.now(UTC)
        entry = erasure_entry(store, actor=_operator(), at=now)
        return await erase_author(store, config, args.author, now, entry)

    done = _run(config, work)
    print(
        f"erased {done.messages} messages ({done.items} items named them, {done.alerts}"
        " alerts quoted them); their timing stays in the figures"
    )
    return 0


def add_parser(subparsers: SubParsers) -> None:
    """Register `privacy` and its `purge`, `export` and `erase`."""
    privacy = subparsers.add_parser(
        "privacy", help="retention purge; export or erase what we hold on one consumer"
    )
    sub = privacy.add_subparsers(dest="privacy_command", required=True)
    purge = sub.add_parser("purge", help="purge text and identities past their retention now")
    purge.set_defaults(func=cmd_purge)
    export = sub.add_parser("export", help="everything held on one consumer, as JSON")
    export.set_defaults(func=cmd_export)
    erase = sub.add_parser("erase", help="remove one consumer's text and identity everywhere")
    erase.set_defaults(func=cmd_erase)
    for command in (purge, export, erase):
        command.add_argument("-c", "--config", required=True, help="TOML config file")
    for command in (export, erase):
        command.add_argument(
            "--author",
            required=True,
            help="the consumer's platform id, user name or pseudonym (p:...)",
        )
