"""Keeping only what is needed: the retention cutoffs, the service's hourly purge, and finding
one consumer's data by id, name or pseudonym (docs/data-protection.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import Clock
from monitor.config import Config
from monitor.logging import get_logger
from monitor.store import Store
from monitor.store.privacy import Recorder, Redacted, erase, export, purge
from monitor.store.pseudonyms import Pseudonyms, load_pseudonyms

log = get_logger("monitor.privacy")


def cutoffs(config: Config, now: datetime) -> dict[str, datetime]:
    """Per source with a retention: messages created before this instant are purged."""
    found = {}
    for source in config.sources:
        days = config.source_privacy(source.name).retention_days
        if days is not None:
            found[source.name] = now - timedelta(days=days)
    return found


async def purge_now(store: Store, config: Config, now: datetime) -> Redacted:
    """One purge of everything past its source's retention."""
    done = await purge(store, cutoffs(config, now), now, await pseudonyms_of(store, config))
    if done.messages or done.alerts:
        # Counts only: a log line never names a consumer or quotes their text.
        log.info("purged", messages=done.messages, items=done.items, alerts=done.alerts)
    return done


async def purge_forever(
    store: Store, config: Config, clock: Clock, leading: Callable[[], bool] = lambda: True
) -> None:
    """Purge at start and then every purge_interval (the service runs this).

    With several instances only the one `leading` purges (it is idempotent, but two at once
    would only get in each other's way).
    """
    while True:
        try:
            if leading():
                await purge_now(store, config, clock.now())
        except Exception:  # the next round may succeed; nothing is lost by waiting
            log.exception("purge failed")
        await clock.sleep(config.privacy.purge_interval)


async def pseudonyms_of(store: Store, config: Config) -> Pseudonyms:
    """The pseudonyms the service stores authors under."""
    key = config.privacy.pseudonym_key
    return await load_pseudonyms(store, key.get_secret_value() if key is not None else None)


def author_values(pseudonyms: Pseudonyms, author: str) -> list[str]:
    """Every form an author may be stored under: as given (rows from before pseudonyms, open
    items' names) and as its pseudonym."""
    return sorted({author, pseudonyms.of(author) or author})


async def export_author(store: Store, config: Config, author: str) -> dict[str, Any]:
    """What we hold on a person, JSON-ready."""
    values = author_values(await pseudonyms_of(store, config), author)
    return {"author": author, "matched_as": values, **await export(store, values)}


async def erase_author(
    store: Store, config: Config, author: str, now: datetime, then: Recorder | None = None
) -> Redacted:
    """Remove a person's text and identity everywhere; the timing of their items stays."""
    pseudonyms = await pseudonyms_of(store, config)
    return await erase(store, author_values(pseudonyms, author), now, pseudonyms, then)
