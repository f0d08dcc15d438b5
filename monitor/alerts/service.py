"""AlertService: roster + notifier + one delivery loop per receiver, started and stopped as one."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta

import aiohttp

from monitor.alerts.actions import ItemActions
from monitor.alerts.delivery import DeliveryWorker
from monitor.alerts.escalation import FollowUpPolicy
from monitor.alerts.ics import IcsRoster
from monitor.alerts.links import Links
from monitor.alerts.models import Duty
from monitor.alerts.notifier import Notifier
from monitor.alerts.outbox import Outbox
from monitor.alerts.roster import Roster
from monitor.clock import Clock, sleep_or_wake
from monitor.config.alerts import AlertsConfig, ReceiverConfig, RosterConfig
from monitor.domain import SourceRef
from monitor.domain.events import Event
from monitor.logging import get_logger
from monitor.metrics import Metrics
from monitor.store import Store

log = get_logger("monitor.alerts.service")

# How often the roster is checked for gaps (who is on duty right now).
GAP_CHECK_SECONDS = 60.0
# The handover loop looks this far ahead for the next shift start, and sleeps at most this
# long, so .ics changes are picked up.
HANDOVER_HORIZON = timedelta(days=2)
HANDOVER_MAX_SLEEP = 900.0
# How often Messenger reply windows are checked (a window alert comes at most this late).
WINDOW_CHECK_SECONDS = 60.0
# At start, a shift that began this recently while the service was down still gets its
# handover (later than that it would be stale news).
HANDOVER_GRACE = timedelta(minutes=15)


class AlertService:
    """Everything alerting needs, wired once; `start` launches its tasks, `stop` ends them."""

    def __init__(
        self,
        *,
        store: Store,
        roster: RosterConfig,
        receivers: Sequence[ReceiverConfig],
        sources: Mapping[str, SourceRef],
        max_targets: Mapping[str, float],
        session: aiohttp.ClientSession,
        clock: Clock,
        metrics: Metrics,
        rng: random.Random | None = None,
        alerts: AlertsConfig | None = None,
        links: Links | None = None,
        emit: Callable[[list[Event]], None] | None = None,
        holds_all: bool = True,
    ) -> None:
        """`holds_all=False`: deliver nothing and lead nothing until `hold` says what."""
        self._roster_config = roster
        self._alerts = alerts or AlertsConfig()
        self.links = links
        self._sources = dict(sources)
        self._clock = clock
        self._metrics = metrics
        self.ics = IcsRoster.from_config(roster, session)
        self.outbox = Outbox(store)
        self.workers = {
            r.name: DeliveryWorker(
                receiver=r,
                outbox=self.outbox,
                session=session,
                clock=clock,
                metrics=metrics,
                rng=rng,
            )
            for r in receivers
        }
        for receiver in receivers:
            metrics.prepare_receiver(receiver.name, receiver.kinds)
        self.notifier = Notifier(
            store=store,
            outbox=self.outbox,
            receivers=receivers,
            sources=sources,
            max_targets=max_targets,
            duty=self.duty,
            clock=clock,
            on_enqueued=self._wake_all,
            policy=FollowUpPolicy.from_config(self._alerts),
            links=links,
            lead=self.lead,
            timezone=roster.timezone,
            people={name: person.handles() for name, person in roster.people.items()},
        )
        self.actions = ItemActions(
            store=store,
            outbox=self.outbox,
            clock=clock,
            sources=sources,
            emit=emit or self.apply_all,
        )
        self._followup_wake = asyncio.Event()
        # Escalation, reminders and handovers run on one instance: the leader (always, alone).
        self._leading = asyncio.Event()
        if holds_all:
            self._leading.set()
        else:
            for worker in self.workers.values():
                worker.active = False
        self._gap: dict[str, bool] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._deliveries: list[asyncio.Task[None]] = []

    def roster(self) -> Roster:
        """The roster as configured plus the latest .ics events."""
        events = self.ics.events if self.ics is not None else ()
        return Roster.from_config(self._roster_config, ics_events=events)

    def duty(self, at: datetime, brand: str, source: str) -> Duty | None:
        """Who is on duty for a source at an instant (None: a roster gap)."""
        return self.roster().on_duty(at, brand=brand, source=source)

    @property
    def sources(self) -> dict[str, SourceRef]:
        """The configured sources by name."""
        return dict(self._sources)

    async def historic_before(self, source: str) -> datetime | None:
        """Items created before this instant are history: never alerted on."""
        return await self.notifier.historic_before(source)

    def lead(self, at: datetime, brand: str, source: str) -> str | None:
        """The lead to tell at an instant (the roster's lead in a gap)."""
        return self.roster().lead_for(at, brand=brand, source=source)

    def apply_all(self, events: list[Event]) -> None:
        """Event subscriber (a list at a time, so items due together share a message)."""
        self.notifier.apply_all(events)

    def hold(self, receivers: Collection[str], *, leader: bool) -> None:
        """Deliver to these receivers only, and run the follow-ups if `leader`."""
        for name, worker in self.workers.items():
            if worker.active != (name in receivers):
                worker.activate(name in receivers)
        if leader:
            self._leading.set()
            self._followup_wake.set()
        else:
            self._leading.clear()

    async def outbox_changed(self) -> None:
        """Another instance queued notifications: refresh the backlog and deliver them."""
        await self.outbox.load_backlog()
        for worker in self.workers.values():
            if worker.active:
                worker.wake()

    def check_gaps(self) -> None:
        """Export webcare_roster_gap and warn the lead once when a gap starts."""
        now = self._clock.now()
        roster = self.roster()
        for ref in self._sources.values():
            gap = roster.on_duty(now, brand=ref.brand, source=ref.name) is None
            self._metrics.roster_gap.labels(ref.brand, ref.name).set(1 if gap else 0)
            if gap and not self._gap.get(ref.name):
                lead = roster.lead_for(now, brand=ref.brand, source=ref.name)
                # Only facts: no `lead=None` when the roster names no lead.
                extra = {"lead": lead} if lead else {}
                log.warning("roster gap: nobody is on duty", source=ref.name, **extra)
            self._gap[ref.name] = gap

    async def start(self) -> None:
        """Read the .ics once, then run the notifier, the receivers and the gap check."""
        if self.ics is not None:
            await self.ics.refresh(self._clock.now())
            self._tasks.append(asyncio.create_task(self._ics_loop(), name="roster-ics"))
        self.check_gaps()
        self._tasks.append(asyncio.create_task(self._notify(), name="notifier"))
        self._tasks.append(asyncio.create_task(self._gap_loop(), name="roster-gaps"))
        self._tasks.append(asyncio.create_task(self._followup_loop(), name="escalation"))
        if self._alerts.handover != "off":
            self._tasks.append(asyncio.create_task(self._handover_loop(), name="handover"))
        if any(ref.platform == "messenger" for ref in self._sources.values()):
            self._tasks.append(asyncio.create_task(self._window_loop(), name="reply-windows"))
        for name, worker in self.workers.items():
            self._deliveries.append(asyncio.create_task(worker.run(), name=f"deliver:{name}"))

    async def stop(self) -> None:
        """Stop the tasks; a delivery in flight may finish first, so it is not sent twice."""
        for worker in self.workers.values():
            worker.stop_soon()
        if self._deliveries:
            longest = max(w.receiver.timeout for w in self.workers.values())
            _, unfinished = await asyncio.wait(self._deliveries, timeout=longest + 1)
            self._tasks.extend(unfinished)  # cancelled below; the outbox sends it again
        self._deliveries.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _notify(self) -> None:
        # Reconcile first, inside the same task, so it never races the live events.
        try:
            await self.notifier.reconcile()
        except Exception:
            log.exception("alert reconciliation at start failed")
        await self.notifier.run()

    async def _ics_loop(self) -> None:
        assert self.ics is not None
        while True:
            await self._clock.sleep(self._roster_config.ics_refresh)
            await self.ics.refresh(self._clock.now())

    async def _gap_loop(self) -> None:
        while True:
            await self._clock.sleep(GAP_CHECK_SECONDS)
            self.check_gaps()

    async def _followup_loop(self) -> None:
        """Escalation steps and reminders: sleep until the earliest persisted next_at."""
        while True:
            await self._leading.wait()
            delay: float | None
            try:
                now = self._clock.now()
                upcoming = await self.outbox.next_followup_at()
                if upcoming is not None and upcoming <= now:
                    await self.notifier.fire_followups(now)
                    upcoming = await self.outbox.next_followup_at()
                    # A step that could not be recorded (a race) is retried, but not in a spin.
                    delay = 1.0 if upcoming is not None and upcoming <= now else 0.0
                else:
                    delay = (upcoming - now).total_seconds() if upcoming is not None else None
            except Exception:
                log.exception("escalation round failed; retrying in 5 s")
                delay = 5.0
            if delay == 0.0:
                continue
            await sleep_or_wake(self._clock, self._followup_wake, delay)

    async def _window_loop(self) -> None:
        """Messenger reply windows closing soon: checked every minute, on the leader."""
        while True:
            await self._leading.wait()
            try:
                await self.notifier.fire_windows(self._clock.now())
            except Exception:
                log.exception("reply window check failed; retrying in a minute")
            await self._clock.sleep(WINDOW_CHECK_SECONDS)

    async def handovers(self, start: datetime, end: datetime) -> datetime | None:
        """Queue the handovers of shifts starting in (start, end]; return the next start."""
        roster = self.roster()
        due: list[tuple[datetime, str, Duty]] = []
        upcoming: datetime | None = None
        for ref in self._sources.values():
            for at, duty in roster.changes(
                start, end + HANDOVER_HORIZON, brand=ref.brand, source=ref.name
            ):
                if at <= end:
                    due.append((at, ref.name, duty))
                else:
                    upcoming = at if upcoming is None else min(upcoming, at)
                    break
        for at, source, duty in sorted(due, key=lambda d: (d[0], d[1])):
            await self.notifier.handover(
                source, at, duty, only_when_waiting=self._alerts.handover == "when_waiting"
            )
        return upcoming

    async def _handover_loop(self) -> None:
        since = self._clock.now() - HANDOVER_GRACE
        while True:
            if not self._leading.is_set():
                await self._leading.wait()
                # A new leader catches up on recent shifts only, as at start.
                since = max(since, self._clock.now() - HANDOVER_GRACE)
            now = self._clock.now()
            try:
                upcoming = await self.handovers(since, now)
                since = now
            except Exception:
                log.exception("shift handover failed; retrying in 60 s")
                upcoming = now + timedelta(seconds=60)
            delay = HANDOVER_MAX_SLEEP
            if upcoming is not None:
                delay = min(delay, (upcoming - now).total_seconds())
            await self._clock.sleep(max(0.0, delay))

    def _wake_all(self) -> None:
        self._followup_wake.set()
        for worker in self.workers.values():
            worker.wake()
