"""create_app: the one composition root; each resource lives in its own cleanup_ctx."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from monitor import __version__
from monitor.clock import Clock, SystemClock
from monitor.config import Config, FacebookPageConfig
from monitor.domain import Period, SourceRef
from monitor.domain.events import Event
from monitor.logging import get_logger
from monitor.metrics import Metrics, OpenItems
from monitor.pipeline import SourceSettings
from monitor.poller import Coordinator, PolledSource
from monitor.sources.base import Source
from monitor.sources.facebook import FacebookPageSource
from monitor.store import Store, create_engine, upgrade
from monitor.web.health import add_routes
from monitor.web.keys import CLOCK, CONFIG, COORDINATOR, HTTP_SESSION, METRICS, OPEN_ITEMS, STORE

log = get_logger("monitor.app")


def source_settings(config: Config) -> list[SourceSettings]:
    """Resolve each source's policy and calendar into the settings the pipeline uses."""
    settings = []
    for source in config.sources:
        policy = config.policy(source.policy)
        settings.append(
            SourceSettings(
                ref=SourceRef(name=source.name, brand=source.brand, platform=source.type),
                calendar=config.calendar(source.calendar),
                targets={
                    Period.OFFICE_HOURS: policy.office_hours,
                    Period.AFTER_HOURS: policy.after_hours,
                },
                warn_at=policy.warn_at,
                reply_match=policy.reply_match,
                ignore_authors=frozenset(source.ignore_authors),
                active_days=source.active_days,
            )
        )
    return settings


def build_source(
    source: FacebookPageConfig, session: aiohttp.ClientSession, clock: Clock
) -> Source:
    """The platform adapter for one configured source."""
    return FacebookPageSource(source, session, clock)


def create_app(
    config: Config,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    start_polling: bool = True,
    rng: random.Random | None = None,
) -> web.Application:
    """Wire config, store, sources, poller, metrics and routes into one aiohttp app."""
    app = web.Application()
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    settings = source_settings(config)
    metrics = Metrics(
        version=__version__, targets={t for s in settings for t in s.targets.values()}
    )
    open_items = OpenItems([s.ref for s in settings], now=app[CLOCK].now)
    metrics.registry.register(open_items)
    for s in settings:
        metrics.prepare(s.ref)
    app[METRICS] = metrics
    app[OPEN_ITEMS] = open_items

    async def database(app: web.Application) -> AsyncIterator[None]:
        if store is not None:
            app[STORE] = store
            yield
            return
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

    def on_events(events: list[Event]) -> None:
        for event in events:
            metrics.apply(event)
            open_items.apply(event)

    async def poller(app: web.Application) -> AsyncIterator[None]:
        by_name = {s.name: s for s in config.sources}
        coordinator = Coordinator(
            sources=[
                PolledSource(
                    settings=s,
                    source=build_source(by_name[s.ref.name], app[HTTP_SESSION], app[CLOCK]),
                    interval=by_name[s.ref.name].poll_interval,
                )
                for s in settings
            ],
            store=app[STORE],
            metrics=metrics,
            on_events=on_events,
            clock=app[CLOCK],
            rng=rng,
        )
        await coordinator.load_state()
        open_items.load(await app[STORE].unanswered_items())
        app[COORDINATOR] = coordinator
        if start_polling:
            coordinator.start()
        log.info("started", sources=[s.ref.name for s in settings], version=__version__)
        yield
        await coordinator.stop()

    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(http_session)
    app.cleanup_ctx.append(poller)
    add_routes(app)
    return app
