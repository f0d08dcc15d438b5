"""`webcare-monitor tokens add|revoke|list`: named, scoped API tokens (stored hashed)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from monitor.audit import ALL_BRANDS, SCOPES, AuditLog, TokenError, TokenRecord, Tokens
from monitor.cli.common import configure_from, load_or_exit
from monitor.config import Config

if TYPE_CHECKING:
    from monitor.cli.common import SubParsers

T = TypeVar("T")


def operator() -> str:
    """Who runs the command: the login name, else "operator"."""
    try:
        return getpass.getuser() or "operator"
    except (KeyError, OSError):  # no USER and no passwd entry (a bare container)
        return "operator"


async def _with_tokens(config: Config, work: Callable[[Tokens], Awaitable[T]]) -> T:
    from monitor.store import Store, create_engine, upgrade

    engine = create_engine(config.database_url)
    try:
        await upgrade(engine)
        store = Store(engine)
        return await work(Tokens(store, AuditLog(store)))
    finally:
        await engine.dispose()


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _run(config: Config, work: Callable[[Tokens], Awaitable[T]]) -> T | None:
    try:
        return asyncio.run(_with_tokens(config, work))
    except TokenError as err:
        print(f"webcare-monitor tokens: error: {err}", file=sys.stderr)
    except (OSError, SQLAlchemyError) as err:
        print(f"webcare-monitor tokens: cannot use the store: {err}", file=sys.stderr)
    return None


def cmd_add(args: argparse.Namespace) -> int:
    """Add a token and print it, once."""
    config = load_or_exit(args.config)
    configure_from(config)
    brands = _split(args.brands)
    known = {s.brand for s in config.sources}
    unknown = sorted(set(brands) - known - {ALL_BRANDS})
    if unknown:
        print(
            f"webcare-monitor tokens: error: unknown brand(s) {', '.join(unknown)}"
            f" (configured: {', '.join(sorted(known))}, or {ALL_BRANDS})",
            file=sys.stderr,
        )
        return 2
    token = _run(
        config,
        lambda t: t.add(
            args.name,
            scopes=_split(args.scopes),
            brands=brands,
            now=datetime.now(UTC),
            actor=operator(),
            origin=socket.gethostname(),
        ),
    )
    if token is None:
        return 1
    print(token)
    print(
        f"token for {args.name!r} added; it is shown only now: hand it over safely",
        file=sys.stderr,
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a token: refused from the next request on."""
    config = load_or_exit(args.config)
    configure_from(config)

    async def revoke(t: Tokens) -> bool:
        await t.revoke(
            args.name, now=datetime.now(UTC), actor=operator(), origin=socket.gethostname()
        )
        return True

    if _run(config, revoke) is None:
        return 1
    print(f"token of {args.name!r} revoked")
    return 0


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def cmd_list(args: argparse.Namespace) -> int:
    """Every token: name, scopes, brands, created, revoked, last used (never the token)."""
    config = load_or_exit(args.config)
    configure_from(config)
    records: list[TokenRecord] | None = _run(config, lambda t: t.all())
    if records is None:
        return 1
    header = ("name", "scopes", "brands", "created", "revoked", "last used")
    rows = [
        (
            r.name,
            ",".join(r.scopes),
            ",".join(r.brands),
            _when(r.created_at),
            _when(r.revoked_at),
            _when(r.last_used_at),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def add_parser(subparsers: SubParsers) -> None:
    """Register the `tokens` subcommand."""
    tokens = subparsers.add_parser(
        "tokens",
        help="named API tokens: add, revoke, list",
        description="Tokens for the API and the queue page, each for a named person or system.",
    )
    sub = tokens.add_subparsers(dest="tokens_command", required=True)
    add = sub.add_parser("add", help="add a token and print it (shown only once)")
    add.add_argument("name", help="the person or system it is for (shown in the audit)")
    add.add_argument(
        "--scopes", default="read,act", help=f"some of {','.join(SCOPES)} (default: read,act)"
    )
    add.add_argument(
        "--brands", required=True, help=f"brands it may see, comma-separated, or {ALL_BRANDS}"
    )
    add.set_defaults(func=cmd_add)
    revoke = sub.add_parser("revoke", help="refuse a token from now on")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_revoke)
    listing = sub.add_parser("list", help="every token, never the token itself")
    listing.set_defaults(func=cmd_list)
    for parser in (add, revoke, listing):
        parser.add_argument("-c", "--config", required=True, help="TOML config file")
