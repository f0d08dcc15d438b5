"""One delivery loop per receiver: in order, retried with backoff, never blocking the others.

The retry policy, the one the README states:

- 5xx, 408, 429, timeouts and network errors are retried with exponential backoff and jitter
  (5 s doubling to at most 5 min; a longer Retry-After wins) until the notification is older
  than the receiver's `max_age`, then dead-lettered.
- Any other refusal (another 4xx, a 3xx: redirects are not followed) is retried the same way
  for REFUSED_GRACE_SECONDS from the first of an unbroken run of refusals by that receiver
  (a hook being redeployed, a secret being rotated), and then dead-lettered as permanent; the
  outbox row's last_error says so. `max_age` still applies within the grace.
- A receiver without a usable URL is dead-lettered at once (the config check prevents it).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import aiohttp

from monitor.alerts.models import Notification
from monitor.alerts.outbox import Outbox, OutboxRow
from monitor.alerts.transport import SendResult, send
from monitor.clock import Clock, sleep_or_wake
from monitor.config.alerts import ReceiverConfig
from monitor.logging import get_logger
from monitor.metrics import Metrics
from monitor.poller.backoff import backoff_delay
from monitor.words import counted

log = get_logger("monitor.alerts.delivery")

Sender = Callable[..., Awaitable[SendResult]]
# Retries start after a few seconds and never wait longer than five minutes between tries,
# so a receiver that comes back is served again quickly.
RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 300.0
# How long a receiver may refuse (4xx other than 408/429, 3xx) before a refusal is final.
REFUSED_GRACE_SECONDS = 600.0
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
        # False while another instance holds this receiver's lease (it delivers, not us).
        self.active = True
        self.down = False
        # Start of the current unbroken run of refusals (None: the last answer was no refusal).
        self.refusing_since: datetime | None = None
        # The gauges read the outbox's backlog snapshot at scrape time: true at every moment.
        name = receiver.name
        metrics.alert_outbox_pending.labels(name).set_function(lambda: outbox.backlog(name).pending)
        metrics.alert_outbox_oldest_age.labels(name).set_function(
            lambda: outbox.backlog(name).age(clock.now())
        )

    def wake(self) -> None:
        """New work was queued."""
        self._wake.set()

    def activate(self, active: bool) -> None:
        """Deliver (True) or leave this receiver to the instance that holds it (False)."""
        self.active = active
        self._wake.set()

    def stop_soon(self) -> None:
        """Finish the delivery in flight (so it is marked delivered), then stop."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped; a store hiccup pauses this receiver only."""
        try:
            await self._outbox.load_backlog()  # what waits from before a restart
        except Exception:
            log.exception("outbox backlog could not be read", receiver=self.receiver.name)
        while not self._stopping:
            if not self.active:
                await sleep_or_wake(self._clock, self._wake, None)
                continue
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
            return IDLE_CHECK_SECONDS
        now = self._clock.now()
        if row.next_attempt_at > now:
            return (row.next_attempt_at - now).total_seconds()
        if now - row.created_at > timedelta(seconds=self.receiver.max_age):
            await self._finish(
                row, "dead", f"gave up after {counted(row.attempts, 'attempt')}", now
            )
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
            self.refusing_since = None
            await self._finish(row, "delivered", None, done)
            self._metrics.alert_delivery.labels(name).observe(
                max(0.0, (done - row.notification.created_at).total_seconds())
            )
            if self.down:
                log.info("alert receiver recovered", receiver=name)
                self.down = False
            return 0.0
        if result.permanent:
            await self._finish(row, "dead", result.error, done)
            log.error("alert cannot be sent to this receiver", receiver=name, error=result.error)
            return 0.0
        error = result.error or ""
        if result.retryable:
            self.refusing_since = None
        else:
            if self.refusing_since is None:
                self.refusing_since = done
            final_at = self.refusing_since + timedelta(seconds=REFUSED_GRACE_SECONDS)
            if done >= final_at:
                record = (
                    f"{error}; refused since {_z(self.refusing_since)} (grace "
                    f"{REFUSED_GRACE_SECONDS:g} s): given up as permanent"
                )
                await self._finish(row, "dead", record, done)
                log.error(
                    "alert dead-lettered: receiver kept refusing it", receiver=name, error=error
                )
                return 0.0
            error = f"{error}; a refusal: given up at {_z(final_at)} unless accepted before"
        attempts = row.attempts + 1
        wait = backoff_delay(
            attempts,
            base=RETRY_BASE_SECONDS,
            cap=RETRY_CAP_SECONDS,
            rng=self._rng,
            retry_after=result.retry_after,
        )
        await self._outbox.retry_later(
            row.id, at=done + timedelta(seconds=wait), attempts=attempts, error=error
        )
        self._count(row.notification, "retried")
        if not self.down:
            log.warning("alert receiver failing; will retry", receiver=name, error=result.error)
            self.down = True
        return wait

    async def _finish(self, row: OutboxRow, state: str, error: str | None, now: datetime) -> None:
        await self._outbox.finish(row.id, state=state, now=now, error=error)
        self._count(row.notification, state)

    def _count(self, notification: Notification, outcome: str) -> None:
        self._metrics.alerts.labels(notification.kind, self.receiver.name, outcome).inc()


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
