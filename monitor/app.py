"""create_app: the one composition root; each resource lives in its own cleanup_ctx."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta

import aiohttp
from aiohttp import web

from monitor import __version__
from monitor.alerts.links import Links, derive_secret
from monitor.alerts.service import AlertService
from monitor.clock import Clock, SystemClock, sleep_or_wake
from monitor.cluster.exported import HeldSeries
from monitor.cluster.identity import instance_name
from monitor.cluster.leases import Leases, PostgresLeases, SoloLeases
from monitor.cluster.member import ClusterMember, Holdings
from monitor.cluster.nudges import Nudge, Nudges
from monitor.config import (
    BlueskyConfig,
    Config,
    DiscourseConfig,
    FacebookPageConfig,
    FlarumConfig,
    InstagramConfig,
    MastodonConfig,
    MessengerConfig,
    PhpbbAtomConfig,
    SourceConfig,
)
from monitor.deadlines import DeadlineScheduler
from monitor.domain import Period, SourceRef
from monitor.domain.events import Event, ItemAcknowledged, ItemDismissed
from monitor.logging import get_logger
from monitor.metrics import Metrics, OpenItems
from monitor.metrics.compliance import RollingCompliance
from monitor.metrics.messenger import MessengerFigures
from monitor.metrics.moderators import ModeratorLabels
from monitor.pipeline import Guard, SourceSettings
from monitor.poller import Coordinator, PolledSource
from monitor.poller.token_watch import TokenWatch, graph_sources
from monitor.privacy import purge_forever
from monitor.sla.evaluate import SlaPolicy
from monitor.sources.base import Source
from monitor.sources.budget import RequestBudget
from monitor.sources.facebook import FacebookPageSource
from monitor.sources.graph_batch import GraphBatcher, batch_group, graph_key, shared_batchers
from monitor.store import Store, create_engine, one_instance, upgrade
from monitor.store.pseudonyms import MessagePrivacy, Pseudonyms, load_pseudonyms
from monitor.web.api import add_api_routes
from monitor.web.edge import edge
from monitor.web.facebook_webhook import add_webhook_routes
from monitor.web.health import add_routes
from monitor.web.keys import (
    ALERTS,
    CLOCK,
    CLUSTER,
    COMPLIANCE,
    CONFIG,
    COORDINATOR,
    EXPORTED,
    HTTP_SESSION,
    METRICS,
    OPEN_ITEMS,
    SCHEDULER,
    STORE,
)
from monitor.web.queue import add_queue_routes

log = get_logger("monitor.app")

# Rolling compliance is a trend figure: once a minute is plenty and keeps the store quiet...
COMPLIANCE_REFRESH_SECONDS = 60.0
# ... except for a source that has no figure yet (first poll after a start or a backfill): it is
# refreshed as soon as its events are stored, at most this often, so Grafana never shows
# "No data" for a minute after each restart.
COMPLIANCE_FIRST_SECONDS = 2.0
# Request bodies (webhook deliveries, forms, JSON) larger than this are refused with 413.
MAX_BODY_BYTES = 1024**2


def source_settings(config: Config, pseudonyms: Pseudonyms | None = None) -> list[SourceSettings]:
    """Resolve each source's policy and calendar into the settings the pipeline uses; with
    `pseudonyms`, consumers are stored pseudonymised and text only where store_text allows."""
    settings = []
    for source in config.sources:
        policy = config.policy(source.policy)
        ignored = set(source.ignore_authors)
        privacy = None
        if pseudonyms is not None:
            # Stored authors are pseudonyms: the ignore list is compared in both forms.
            ignored |= {p for a in source.ignore_authors if (p := pseudonyms.of(a))}
            store_text = config.source_privacy(source.name).store_text
            privacy = MessagePrivacy(pseudonyms, store_text=store_text)
        settings.append(
            SourceSettings(
                ref=SourceRef(name=source.name, brand=source.brand, platform=source.type),
                policy=SlaPolicy(
                    office=config.calendar(source.calendar),
                    coverage=config.calendar(policy.coverage),
                    targets={
                        Period.OFFICE_HOURS: policy.office_hours,
                        Period.AFTER_HOURS: policy.after_hours,
                    },
                    warn_at=policy.warn_at,
                    reply_match=policy.reply_match,
                ),
                ignore_authors=frozenset(ignored),
                active_days=source.active_days,
                privacy=privacy,
            )
        )
    return settings


def build_links(config: Config) -> Links | None:
    """Signed ack/dismiss links, when a link secret or an API token exists to sign them."""
    given = config.http.link_secret
    secret = derive_secret(
        given.get_secret_value() if given is not None else None,
        [t.token.get_secret_value() for t in config.http.api_tokens],
    )
    if secret is None:
        return None
    return Links(
        base_url=config.http.base_url(),
        secret=secret,
        ttl=timedelta(seconds=config.alerts.link_ttl),
    )


def build_source(
    source: SourceConfig,
    session: aiohttp.ClientSession,
    clock: Clock,
    budgets: dict[str, RequestBudget],
    batchers: Mapping[str, GraphBatcher] | None = None,
) -> Source:
    """The platform adapter for one configured source."""
    if isinstance(source, FacebookPageConfig):
        # Pages sharing a token share one batcher (Graph batch POSTs); a lone page has none.
        batcher = (batchers or {}).get(graph_key(source))
        return FacebookPageSource(source, session, clock, batcher=batcher)
    if isinstance(source, DiscourseConfig):
        from monitor.sources.discourse import DiscourseSource

        # One budget per site: Discourse's admin API limit is shared by all its sources.
        budget = budgets.setdefault(
            source.base_url, RequestBudget(per_minute=source.requests_per_minute, clock=clock)
        )
        return DiscourseSource(source, session, clock, budget)
    if isinstance(source, MessengerConfig):
        from monitor.sources.messenger import MessengerSource

        return MessengerSource(source, session, clock)
    if isinstance(source, InstagramConfig):
        from monitor.sources.instagram import InstagramSource

        return InstagramSource(source, session, clock)
    if isinstance(source, PhpbbAtomConfig):
        from monitor.sources.atom import PhpbbAtomSource

        return PhpbbAtomSource(source, session, clock, feed_limit=source.feed_limit)
    if isinstance(source, FlarumConfig):
        from monitor.sources.flarum import FlarumSource

        return FlarumSource(source, session, clock)
    if isinstance(source, MastodonConfig):
        from monitor.sources.mastodon import MastodonSource

        return MastodonSource(source, session, clock)
    if isinstance(source, BlueskyConfig):
        from monitor.sources.bluesky import BlueskySource

        return BlueskySource(source, session, clock)
    raise NotImplementedError(f"no adapter for {source.type} sources yet")


def create_app(
    config: Config,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    start_polling: bool = True,
    rng: random.Random | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """Wire config, store, sources, poller, metrics and routes into one aiohttp app.

    `metrics`: the instruments of the previous generation of this process (a config reload),
    so counters continue instead of starting again from zero; only one app at a time may use
    them. Series of sources and receivers the new config no longer has are dropped.
    """
    # Every request passes the edge: input refusals are counted 4xx answers, bugs a logged 500.
    app = web.Application(middlewares=[edge], client_max_size=MAX_BODY_BYTES)
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    settings = source_settings(config)
    targets = {t for s in settings for t in s.policy.targets.values()}
    if metrics is None:
        metrics = Metrics(version=__version__, targets=targets)
    else:
        if metrics.retarget(targets):
            log.info("new SLA targets: the response-time histograms start again from zero")
        metrics.retain([s.ref for s in settings], [r.name for r in config.receivers])
    open_items = OpenItems([s.ref for s in settings], now=app[CLOCK].now)
    for s in settings:
        metrics.prepare(s.ref)
    # Per-moderator series name roster ids only (docs/metrics.md: bounded, non-personal).
    metrics.moderators = ModeratorLabels(config.roster.moderator_accounts())
    app[METRICS] = metrics
    app[OPEN_ITEMS] = open_items

    async def database(app: web.Application) -> AsyncIterator[None]:
        if store is not None:
            app[STORE] = store
            yield
            return
        with one_instance(config.database_url):
            engine = create_engine(config.database_url)
            await upgrade(engine)
            app[STORE] = Store(engine)
            yield
            await engine.dispose()

    async def http_session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(
            headers={"User-Agent": f"webcare-monitor/{__version__}"}
        ) as s:
            app[HTTP_SESSION] = s
            yield

    compliance = RollingCompliance([s.ref for s in settings])
    app[COMPLIANCE] = compliance
    # Messenger's reply windows and Meta's own figures, refreshed with rolling compliance.
    messenger_figures = MessengerFigures([s.ref for s in settings], now=app[CLOCK].now)

    async def collectors(app: web.Application) -> AsyncIterator[None]:
        # This generation's own collectors join the (possibly inherited) registry while it
        # runs and leave it when it stops, so the next generation can register its own.
        for collector in (open_items, compliance, messenger_figures):
            metrics.registry.register(collector)
        yield
        for collector in (messenger_figures, compliance, open_items):
            metrics.registry.unregister(collector)

    # Every event goes to each subscriber in order; the scheduler joins once it exists.
    subscribers: list[Callable[[Event], None]] = [metrics.apply, open_items.apply]

    # Subscribers that need a whole round of events at once (alerts group items due together).
    round_subscribers: list[Callable[[list[Event]], None]] = []

    compliance_wake = asyncio.Event()
    instance = instance_name(config)
    refs = {s.ref.name: s.ref for s in settings}

    groups: dict[str, str | None] = {}  # each source's batch group (poller)
    batchers_now: dict[str, GraphBatcher] = {}  # the poller's, by group

    def guard_for(name: str) -> Guard | None:
        """The lease check a source's writes make (none while alone on SQLite)."""
        member = app.get(CLUSTER)
        fence = member.fence(name) if member is not None else None
        if member is None or fence is None or member.solo:
            return None
        return lambda conn: member.guard(conn, name, fence)

    def holdings() -> Holdings:
        # Until the first lease round (at start) this instance holds nothing.
        member = app.get(CLUSTER)
        return member.holdings if member is not None else Holdings()

    app[EXPORTED] = HeldSeries(metrics.registry, instance, holdings)

    def on_events(events: list[Event]) -> None:
        member = app.get(CLUSTER)
        if member is not None:
            # An ack or dismissal of another instance's source is that instance's to follow.
            elsewhere = [e for e in events if not member.holds_source(e.source.name)]
            if elsewhere:
                member.forward_events(elsewhere)
                events = [e for e in events if member.holds_source(e.source.name)]
        for event in events:
            for subscriber in subscribers:
                subscriber(event)
            if not compliance.has_figures(event.source.name):
                compliance_wake.set()
        for round_subscriber in round_subscribers:
            round_subscriber(events)

    async def poller(app: web.Application) -> AsyncIterator[None]:
        by_name = {s.name: s for s in config.sources}
        key = config.privacy.pseudonym_key
        pseudonyms = await load_pseudonyms(app[STORE], key.get_secret_value() if key else None)
        stored_as = {s.ref.name: s for s in source_settings(config, pseudonyms)}
        budgets: dict[str, RequestBudget] = {}
        batchers = shared_batchers(config.sources, app[HTTP_SESSION], app[CLOCK])
        coordinator = Coordinator(
            sources=[
                PolledSource(
                    settings=stored_as[s.ref.name],
                    source=build_source(
                        by_name[s.ref.name], app[HTTP_SESSION], app[CLOCK], budgets, batchers
                    ),
                    # Polled together, so their requests meet in the same batch POSTs.
                    group=batch_group(by_name[s.ref.name], batchers),
                    interval=by_name[s.ref.name].poll_interval,
                )
                for s in settings
            ],
            store=app[STORE],
            metrics=metrics,
            on_events=on_events,
            clock=app[CLOCK],
            rng=rng,
            # On a terminal a first backfill draws a bar; under systemd or Docker it logs lines.
            progress_terminal=sys.stderr if sys.stderr.isatty() else None,
            forward=lambda name, threads: app[CLUSTER].forward_threads(name, threads),
            guard_for=guard_for,
        )
        await coordinator.load_state()
        app[COORDINATOR] = coordinator
        batchers_now.update(batchers)
        groups.update({s.name: batch_group(s, batchers) for s in config.sources})
        yield
        await coordinator.stop()
        for batcher in batchers.values():
            await batcher.close()

    async def deadlines(app: web.Application) -> AsyncIterator[None]:
        scheduler = DeadlineScheduler(
            store=app[STORE],
            clock=app[CLOCK],
            sources={s.ref.name: s.ref for s in settings},
            refetch=app[COORDINATOR].refetch,
            on_events=on_events,
        )
        # The deadlines to fire (and the open items) are those of the sources the first lease
        # round gives us: the cluster context loads both then.
        subscribers.append(scheduler.apply)
        app[SCHEDULER] = scheduler
        task = asyncio.create_task(scheduler.run(), name="deadlines")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def rolling_compliance(app: web.Application) -> AsyncIterator[None]:
        async def refresh_forever() -> None:
            clock = app[CLOCK]
            while True:
                await clock.sleep(COMPLIANCE_FIRST_SECONDS)
                await sleep_or_wake(
                    clock, compliance_wake, COMPLIANCE_REFRESH_SECONDS - COMPLIANCE_FIRST_SECONDS
                )
                try:
                    await compliance.refresh(app[STORE], clock.now())
                    await messenger_figures.refresh(app[STORE], clock.now())
                except Exception:  # the next round may succeed; the old values stay served
                    log.exception("compliance refresh failed")

        await compliance.refresh(app[STORE], app[CLOCK].now())
        await messenger_figures.refresh(app[STORE], app[CLOCK].now())
        task = asyncio.create_task(refresh_forever(), name="compliance")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def alerting(app: web.Application) -> AsyncIterator[None]:
        service = AlertService(
            store=app[STORE],
            roster=config.roster,
            receivers=config.receivers,
            sources={s.ref.name: s.ref for s in settings},
            max_targets={s.ref.name: s.max_target for s in settings},
            session=app[HTTP_SESSION],
            clock=app[CLOCK],
            metrics=metrics,
            rng=rng,
            alerts=config.alerts,
            links=build_links(config),
            # Ack and dismiss from the API or the queue page reach every subscriber.
            emit=on_events,
            # Which receivers to deliver to, and whether to lead, the first lease round says.
            holds_all=False,
        )
        round_subscribers.append(service.apply_all)
        app[ALERTS] = service
        await service.start()
        yield
        await service.stop()

    async def token_watch(app: web.Application) -> AsyncIterator[None]:
        graph = graph_sources(config.sources)
        if not graph:
            yield
            return
        watcher = TokenWatch(
            sources=graph, session=app[HTTP_SESSION], metrics=metrics, clock=app[CLOCK]
        )
        task = asyncio.create_task(watcher.run(), name="token-watch")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def cluster(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        leases: Leases = SoloLeases(instance)
        nudges = None
        own_engine = None
        if store.engine.dialect.name == "postgresql":
            # Any number of instances may share this database: leases decide who does what.
            # Rounds and nudges get connections of their own: a thousand polls waiting for
            # the main pool must not make this instance miss renewing its leases.
            own_engine = create_engine(config.database_url, pool_size=2)
            leases = PostgresLeases(own_engine, instance, config.lease_seconds())
            nudges = Nudges(own_engine)
        outbox_seen = 0

        async def on_change(held: Holdings) -> None:
            await app[COORDINATOR].hold(held.sources)
            for key, batcher in batchers_now.items():
                # A batch waits for the pages this instance polls, not for every configured one.
                batcher.resize(sum(1 for n in held.sources if groups.get(n) == key))
            unanswered = await store.unanswered_items()
            open_items.load(unanswered)  # exported only for held sources (HeldSeries)
            app[SCHEDULER].hold(held.sources, unanswered)
            app[ALERTS].hold(held.receivers, leader=held.leader)

        async def on_nudge(nudge: Nudge) -> None:
            body = nudge.body
            if "threads" in body:
                await app[COORDINATOR].refetch_quietly(nudge.source, frozenset(body["threads"]))
                return
            item = (await store.items_by_id([body["item"]])).get(body["item"])
            if item is not None and item.source in refs:
                ref = refs[item.source]
                if body["event"] == "acknowledged":
                    on_events([ItemAcknowledged(source=ref, item=item, by=body["by"])])
                else:
                    on_events([ItemDismissed(source=ref, item=item, previous=None)])

        async def on_feed() -> None:
            nonlocal outbox_seen
            newest = await app[ALERTS].outbox.newest_id()
            if newest != outbox_seen:  # another instance queued something to deliver
                outbox_seen = newest
                await app[ALERTS].outbox_changed()

        member = ClusterMember(
            leases=leases,
            nudges=nudges,
            sources={name: ref.platform for name, ref in refs.items()},
            receivers=[r.name for r in config.receivers],
            ttl=config.lease_seconds(),
            clock=app[CLOCK],
            on_change=on_change,
            on_nudge=on_nudge,
            on_feed=on_feed,
        )
        await member.start()
        app[CLUSTER] = member
        yield
        # Nothing is polled or delivered after the leases are handed over.
        await app[COORDINATOR].stop()
        await app[ALERTS].stop()
        await member.stop()
        if own_engine is not None:
            await own_engine.dispose()

    async def retention(app: web.Application) -> AsyncIterator[None]:
        # It starts with the polling, on the leader (the only instance when alone).
        if not start_polling:
            yield
            return
        task = asyncio.create_task(
            purge_forever(
                app[STORE], config, app[CLOCK], leading=lambda: app[CLUSTER].holdings.leader
            ),
            name="privacy-purge",
        )
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def polling(app: web.Application) -> AsyncIterator[None]:
        if start_polling:
            app[COORDINATOR].start()
        names = sorted(refs)
        # Named when few; a thousand names make a line nobody reads.
        shown = names if len(names) <= 20 else [*names[:20], f"and {len(names) - 20} more"]
        log.info("started", sources=shown, version=__version__, instance=instance)
        yield

    contexts = (
        collectors,
        database,
        http_session,
        poller,
        alerting,
        deadlines,
        rolling_compliance,
        token_watch,
        cluster,
        retention,
    )
    for ctx in (*contexts, polling):
        app.cleanup_ctx.append(ctx)
    add_routes(app)
    add_api_routes(app)
    add_webhook_routes(app)
    add_queue_routes(app)
    return app
