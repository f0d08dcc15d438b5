"""`webcare-monitor report`: the report from the store as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from monitor import campaign_format
from monitor.campaign import CampaignReport, campaign_tag
from monitor.cli.common import brand_zone, load_or_exit
from monitor.config import Config
from monitor.report import (
    AnyReport,
    Report,
    ReportItem,
    ReportKind,
    ReportRow,
    build,
    build_items_report,
    check_window,
    parse_instant,
)
from monitor.report_format import FORMATS, TABLE_WIDTH, render

if TYPE_CHECKING:
    from monitor.cli.common import SubParsers
    from monitor.store import Store

T = TypeVar("T")

DEFAULT_DAYS = 7


def report_window(
    args: argparse.Namespace, config: Config, now: datetime
) -> tuple[datetime, datetime]:
    """[since, until) from --since/--until, --last or --month; by default the last 7 days."""
    # Days are the brand's local days; the default 7 include today.
    zone = brand_zone(config, args.brand)
    explicit = args.since is not None or args.until is not None
    if explicit and (args.month is not None or args.last is not None):
        raise ValueError("give either --since/--until or --last / --month, not both")
    if args.month is not None:
        try:
            first = datetime.strptime(args.month, "%Y-%m").replace(tzinfo=zone)
        except ValueError as err:
            raise ValueError(f"invalid month {args.month!r}: use YYYY-MM, e.g. 2026-11") from err
        after = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        return first.astimezone(UTC), after.astimezone(UTC)
    if explicit:
        if args.since is None or args.until is None:
            raise ValueError("give both --since and --until (or --last / --month)")
        return parse_instant(args.since, zone), parse_instant(args.until, zone)
    days = DEFAULT_DAYS
    if args.last is not None:
        match = re.fullmatch(r"(\d+)d", args.last.strip())
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"invalid --last {args.last!r}: a number of days, e.g. 30d")
        days = int(match.group(1))
    local_now = now.astimezone(zone)
    tomorrow = datetime.combine(local_now.date() + timedelta(days=1), time(), tzinfo=zone)
    start = datetime.combine(tomorrow.date() - timedelta(days=days), time(), tzinfo=zone)
    return start.astimezone(UTC), tomorrow.astimezone(UTC)


async def _read(config: Config, read: Callable[[Store], Awaitable[T]]) -> T:
    """`read` on the config's store, migrated first; the engine closed after."""
    from monitor.store import Store, create_engine, upgrade

    engine = create_engine(config.database_url)
    try:
        await upgrade(engine)
        return await read(Store(engine))
    finally:
        await engine.dispose()


def _now() -> datetime:
    # Asked after loading: every reply stored by then is at or before this instant.
    return datetime.now(UTC)


async def _load_items(
    config: Config, *, since: datetime, until: datetime, brand: str | None
) -> list[ReportItem]:
    from monitor.store.reports import report_items

    brands = None if brand is None else [brand]
    return await _read(
        config, lambda store: report_items(store, since=since, until=until, brands=brands)
    )


async def _summary(
    config: Config,
    *,
    since: datetime,
    until: datetime,
    brand: str | None,
    sources: dict[str, str],
) -> Report[ReportRow]:
    """The summary tallied from SQL: no object per item (a year's report in seconds)."""
    from monitor.store.reports import summary_report

    return await _read(
        config,
        lambda store: summary_report(
            store, since=since, until=until, as_of=_now, brand=brand, sources=sources
        ),
    )


async def _campaign(
    config: Config, *, tag: str, since: datetime, until: datetime, brand: str | None, items: bool
) -> CampaignReport | AnyReport:
    """The campaign report of `tag`; with `items`, the listing of its interactions' items."""
    from monitor.store.campaigns import campaign_report, read_campaign

    if not items:
        return await _read(
            config,
            lambda store: campaign_report(
                store, tag=tag, since=since, until=until, as_of=_now, brand=brand
            ),
        )
    _posts, found = await _read(
        config, lambda store: read_campaign(store, tag=tag, since=since, until=until, brand=brand)
    )
    return build_items_report(found, since=since, until=until, as_of=_now(), brand=brand)


def _kind(args: argparse.Namespace) -> ReportKind:
    if args.items:
        return "items"
    return "moderator" if args.by == "moderator" else "summary"


def cmd_report(args: argparse.Namespace) -> int:
    """`report -c CONFIG --since ISO --until ISO ...`: print the report of a window."""
    config = load_or_exit(args.config)
    try:
        args.since, args.until = report_window(args, config, datetime.now(UTC))
        check_window(args.since, args.until)
        if args.campaign is not None:
            args.campaign = campaign_tag(args.campaign)
            if args.by is not None:
                raise ValueError("--campaign lists its own figures: drop --by moderator")
    except ValueError as err:
        print(f"webcare-monitor report: error: {err}", file=sys.stderr)
        return 2
    sources = {s.name: s.brand for s in config.sources}
    if args.brand is not None and args.brand not in sources.values():
        known = ", ".join(sorted(set(sources.values())))
        print(
            f"webcare-monitor report: error: unknown brand {args.brand!r} (configured: {known})",
            file=sys.stderr,
        )
        return 2
    kind = _kind(args)
    window = {"since": args.since, "until": args.until, "brand": args.brand}
    zone = brand_zone(config, args.brand)
    report: CampaignReport | AnyReport
    try:
        if args.campaign is not None:
            report = asyncio.run(_campaign(config, **window, tag=args.campaign, items=args.items))
        elif kind == "summary":
            report = asyncio.run(_summary(config, **window, sources=sources))
        else:
            items = asyncio.run(_load_items(config, **window))
            report = build(kind, items, **window, as_of=_now(), sources=sources)
    except (OSError, SQLAlchemyError) as err:
        print(f"webcare-monitor report: cannot read the store: {err}", file=sys.stderr)
        return 1
    if isinstance(report, CampaignReport):
        sys.stdout.write(campaign_format.render(report, args.format, zone))
    else:
        sys.stdout.write(render(report, args.format, kind, zone, wide=args.wide))
    return 0


def add_parser(subparsers: SubParsers) -> None:
    """Register the `report` subcommand."""
    report = subparsers.add_parser(
        "report",
        help="SLA report over the items created in a window",
        description=(
            "Items created in [since, until); outcomes judged as of now. Without a window: the"
            " last 7 days (today included) in the brand's time zone. A --since/--until time"
            " without an offset is in the brand's time zone too."
        ),
    )
    report.add_argument("-c", "--config", required=True, help="TOML config file")
    window = report.add_mutually_exclusive_group()
    window.add_argument("--last", default=None, help="the last N days, e.g. 30d (default 7d)")
    window.add_argument("--month", default=None, help="a calendar month, e.g. 2026-11")
    report.add_argument(
        "--since", default=None, help="window start, ISO 8601; without an offset: brand's time"
    )
    report.add_argument("--until", default=None, help="window end, exclusive (same form)")
    report.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    report.add_argument("--brand", default=None, help="only this brand")
    report.add_argument(
        "--wide",
        action="store_true",
        help=f"table: one line per row with every column (default: fits {TABLE_WIDTH} columns)",
    )
    detail = report.add_mutually_exclusive_group()
    detail.add_argument("--by", choices=["moderator"], default=None, help="rows per responder")
    detail.add_argument("--items", action="store_true", help="list the items themselves")
    report.add_argument(
        "--campaign",
        default=None,
        metavar="TAG",
        help=(
            "one hashtag's posts and interactions on Mastodon and Bluesky (docs/campaigns.md);"
            " with --items, its interactions' items"
        ),
    )
    report.set_defaults(func=cmd_report)
