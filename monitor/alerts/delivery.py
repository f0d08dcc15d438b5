"""One delivery loop per receiver: in order, retried with backoff, never blocking the others."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import aiohttp

from monitor.alerts.models import Notification
from monitor.alerts.outbox import Outbox, OutboxRow
from monitor.alerts.settings import ReceiverConfig
from monitor.alerts.transport import SendResult, send
from monitor.clock import Clock, sleep_or_wake
from monitor.logging import get_logger
from monitor.metrics import Metrics
from monitor.poller.backoff import backoff_delay

log = get_logger("monitor.alerts.delivery")

Sender = Callable[..., Awaitable[SendResult]]
# Retries start after a few seconds and never wait longer than five minutes between tries,
# so a receiver that comes back is served again quickly.
RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 300.0
# With nothing pending, look at the outbox again this often even without a wake-up.
IDLE_CHECK_SECONDS = 60.0


class DeliveryWorker:
    """Delivers one receiver's outbox strictly in order (head-of-line), until cancelled."""

    def __init__(
        self,
        *,
        receiver: ReceiverConfig,
        outbox: Outbox,
        session: aiohttp.ClientSession,
        clock: Clock,
        metrics: Metrics,
        sender: Sender = send,
        rng: random.Random | None = None,
    ) -> None:
        self.receiver = receiver
        self._outbox = outbox
        self._session = session
        self._clock = clock
        self._metrics = metrics
        self._send = sender
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self.down = False

    def wake(self) -> None:
        """New work was queued."""
        self._wake.set()

    def stop_soon(self) -> None:
        """Finish the delivery in flight (so it is marked delivered), then stop."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped; a store hiccup pauses this receiver only."""
        while not self._stopping:
            try:
                delay = await self.step()
            except Exception:
                log.exception("delivery loop failed; retrying", receiver=self.receiver.name)
                delay = RETRY_BASE_SECONDS
            if not self._stopping:
                await sleep_or_wake(self._clock, self._wake, delay)

    async def step(self) -> float | None:
        """Try the head of the queue once; return how long to wait before the next step."""
        name = self.receiver.name
        row = await self._outbox.head(name)
        if row is None:
            self._metrics.alert_outbox_pending.labels(name).set(0)
            return IDLE_CHECK_SECONDS
        now = self._clock.now()
        if row.next_attempt_at > now:
            return (row.next_attempt_at - now).total_seconds()
        if now - row.created_at > timedelta(seconds=self.receiver.max_age):
            await self._finish(row, "dead", f"gave up after {row.attempts} attempt(s)", now)
            log.error(
                "alert dead-lettered: receiver did not accept it in time",
                receiver=name,
                kind=row.notification.kind,
                delivery_id=row.delivery_id,
                attempts=row.attempts,
            )
            return 0.0
        result = await self._send(
            self.receiver,
            row.notification,
            delivery_id=row.delivery_id,
            session=self._session,
            now=now,
        )
        done = self._clock.now()
        if result.ok:
            await self._finish(row, "delivered", None, done)
            self._metrics.alert_delivery.labels(name).observe(
                max(0.0, (done - row.notification.created_at).total_seconds())
            )
            if self.down:
                log.info("alert receiver recovered", receiver=name)
                self.down = False
            return 0.0
        if not result.retryable:
            await self._finish(row, "dead", result.error, done)
            log.error("alert refused by receiver", receiver=name, error=result.error)
            return 0.0
        attempts = row.attempts + 1
        wait = backoff_delay(
            attempts,
            base=RETRY_BASE_SECONDS,
            cap=RETRY_CAP_SECONDS,
            rng=self._rng,
            retry_after=result.retry_after,
        )
        await self._outbox.retry_later(
            row.id, at=done + timedelta(seconds=wait), attempts=attempts, error=result.error or ""
        )
        self._count(row.notification, "retried")
        if not self.down:
            log.warning("alert receiver failing; will retry", receiver=name, error=result.error)
            self.down = True
        return wait

    async def _finish(self, row: OutboxRow, state: str, error: str | None, now: datetime) -> None:
        await self._outbox.finish(row.id, state=state, now=now, error=error)
        self._count(row.notification, state)
        pending = (await self._outbox.pending_counts()).get(self.receiver.name, 0)
        self._metrics.alert_outbox_pending.labels(self.receiver.name).set(pending)

    def _count(self, notification: Notification, outcome: str) -> None:
        self._metrics.alerts.labels(notification.kind, self.receiver.name, outcome).inc()
