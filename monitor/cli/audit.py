"""`webcare-monitor audit`: who did what, from the audit trail, as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from monitor.audit import ACTIONS, AuditEntry, AuditLog, to_csv, to_json
from monitor.cli.common import brand_zone, configure_from, load_or_exit
from monitor.config import Config
from monitor.report import parse_instant

if TYPE_CHECKING:
    from monitor.cli.common import SubParsers

DEFAULT_LIMIT = 1000


async def _entries(config: Config, **filters: Any) -> list[AuditEntry]:
    from monitor.store import Store, create_engine, upgrade

    engine = create_engine(config.database_url)
    try:
        await upgrade(engine)
        return await AuditLog(Store(engine)).entries(**filters)
    finally:
        await engine.dispose()


def _table(entries: list[AuditEntry], config: Config) -> str:
    """Local times with their offset: the brand's zone, the roster's for entries without one."""
    brands = {s.brand for s in config.sources}
    roster = ZoneInfo(str(config.roster.timezone))
    header = ("at", "actor", "via", "action", "item", "brand", "reason", "origin")
    rows = []
    for e in entries:
        zone = brand_zone(config, e.brand) if e.brand in brands else roster
        at = e.at.astimezone(zone).isoformat(timespec="seconds")
        cells = (e.actor, e.via, e.action, e.item_id, e.brand, e.reason, e.origin)
        rows.append((at, *("-" if c is None else str(c) for c in cells)))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def cmd_audit(args: argparse.Namespace) -> int:
    """Print the audit entries that match, newest first."""
    config = load_or_exit(args.config)
    configure_from(config)
    zone = ZoneInfo(str(config.roster.timezone))
    try:
        since = parse_instant(args.since, zone) if args.since else None
        until = parse_instant(args.until, zone) if args.until else None
    except ValueError as err:
        print(f"webcare-monitor audit: error: {err}", file=sys.stderr)
        return 2
    filters: dict[str, Any] = {
        "since": since,
        "until": until,
        "actor": args.actor,
        "action": args.action,
        "item_id": args.item,
        "brand": args.brand,
        "limit": args.limit,
    }
    try:
        entries = asyncio.run(_entries(config, **filters))
    except (OSError, SQLAlchemyError) as err:
        print(f"webcare-monitor audit: cannot read the store: {err}", file=sys.stderr)
        return 1
    render = {"csv": to_csv, "json": to_json}.get(args.format)
    sys.stdout.write(render(entries) if render else _table(entries, config))
    return 0


def add_parser(subparsers: SubParsers) -> None:
    """Register the `audit` subcommand."""
    audit = subparsers.add_parser(
        "audit",
        help="who did what: acks, dismissals, undos, erasures, token changes, reloads",
        description=(
            "Audit entries, newest first. A --since/--until time without an offset is in the"
            " roster's time zone; the table shows each entry in its brand's time zone."
        ),
    )
    audit.add_argument("-c", "--config", required=True, help="TOML config file")
    audit.add_argument("--since", default=None, help="from this instant, ISO 8601")
    audit.add_argument("--until", default=None, help="before this instant (same form)")
    audit.add_argument("--actor", default=None, help="only this actor (a token's name)")
    audit.add_argument("--action", choices=ACTIONS, default=None, help="only this action")
    audit.add_argument("--item", type=int, default=None, help="only this item id")
    audit.add_argument("--brand", default=None, help="only this brand")
    audit.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="at most this many")
    audit.add_argument("--format", choices=("table", "csv", "json"), default="table")
    audit.set_defaults(func=cmd_audit)
