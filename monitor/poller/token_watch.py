"""Checks the Graph sources' token expiry a few times a day; exports it and warns days ahead."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta

import aiohttp

from monitor.clock import Clock
from monitor.config import GraphSourceConfig, SourceConfig
from monitor.logging import get_logger
from monitor.metrics import Metrics
from monitor.sources.base import SourceError
from monitor.sources.facebook_token import TokenExpiry, check_token

log = get_logger("monitor.poller.token_watch")

CHECK_EVERY = timedelta(hours=6)
WARN_BEFORE = timedelta(days=7)


def needs_warning(expiry: TokenExpiry, now: datetime) -> bool:
    """True when the token (or its data access) lapses within WARN_BEFORE, or already did."""
    first = expiry.first_expiry()
    return not expiry.is_valid or (first is not None and first - now <= WARN_BEFORE)


def graph_sources(sources: Sequence[SourceConfig]) -> list[GraphSourceConfig]:
    """The sources whose Page access token can expire: Facebook Pages, Messenger, Instagram."""
    return [s for s in sources if isinstance(s, GraphSourceConfig)]


class TokenWatch:
    """One periodic check per Graph token; failures are logged and retried next round."""

    def __init__(
        self,
        *,
        sources: Sequence[GraphSourceConfig],
        session: aiohttp.ClientSession,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._sources = sources
        self._session = session
        self._metrics = metrics
        self._clock = clock

    async def check_all(self) -> None:
        """Check each distinct token once and export it for every source that uses it."""
        by_token: dict[tuple[str, str], list[GraphSourceConfig]] = {}
        for source in self._sources:
            key = (source.api_base_url, source.access_token.get_secret_value())
            by_token.setdefault(key, []).append(source)
        for sharing in by_token.values():
            names = [s.name for s in sharing]
            try:
                expiry = await check_token(sharing[0], self._session)
            except SourceError as err:
                log.warning("token check failed", sources=names, error=str(err))
                continue
            for source in sharing:
                self._export(source, expiry)
            if needs_warning(expiry, self._clock.now()):
                first = expiry.first_expiry()
                log.warning(
                    "access token expires soon: generate a new Page access token and update"
                    " access_token in the config",
                    sources=names,
                    valid=expiry.is_valid,
                    expires_at=first.isoformat() if first else None,
                )

    async def run(self) -> None:
        """Check at start and then every CHECK_EVERY, until cancelled."""
        while True:
            await self.check_all()
            await self._clock.sleep(CHECK_EVERY.total_seconds())

    def _export(self, source: GraphSourceConfig, expiry: TokenExpiry) -> None:
        gauge = self._metrics.token_expiry
        for kind, instant in (
            ("access", expiry.expires_at),
            ("data_access", expiry.data_access_expires_at),
        ):
            if instant is not None:
                gauge.labels(source.brand, source.name, kind).set(instant.timestamp())
            else:
                with contextlib.suppress(KeyError):  # never expires: no series at all
                    gauge.remove(source.brand, source.name, kind)
