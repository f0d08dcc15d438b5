"""Progress of long work (a first backfill, `db recompute`): a bar on a terminal, log lines
otherwise, and a phrase for /readyz."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from monitor.durations import human_duration
from monitor.logging import get_logger

log = get_logger("monitor.progress")

# A log line at the start, then one every this many seconds (journald and Docker read lines).
LOG_EVERY_SECONDS = 10.0
# A terminal bar appears once the task has run this long (a quick one stays quiet), then is
# redrawn at most every BAR_EVERY_SECONDS.
BAR_AFTER_SECONDS = 1.0
BAR_EVERY_SECONDS = 0.25
BAR_WIDTH = 24
# No rate (nor time to go) before this much time has passed: a first page that covers most of
# a backfill in milliseconds would say "a million days a second, done in 0 s".
RATE_AFTER_SECONDS = 1.0


class Progress:
    """How far one long task over one subject is: done of total, its rate and time to go."""

    def __init__(
        self,
        task: str,
        subject: str,
        *,
        total: float,
        unit: str,
        terminal: TextIO | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.task = task
        self.subject = subject
        self.total = max(total, 0.0)
        self.unit = unit
        self.done = 0.0
        self._terminal = terminal
        self._now = now
        self._started = now()
        self._shown: float | None = None

    def update(self, done: float) -> None:
        """Record how much is done (never goes back); show it when a bar or line is due."""
        self.done = min(max(done, self.done), self.total)
        moment = self._now()
        if self._terminal is None:
            due = self._shown is None or moment - self._shown >= LOG_EVERY_SECONDS
        elif self._shown is None:
            due = moment - self._started >= BAR_AFTER_SECONDS
        else:
            due = moment - self._shown >= BAR_EVERY_SECONDS
        if due:
            self._show(moment)

    def remaining(self, left: float, total: float) -> None:
        """Record how much is left of `total`; a resumed task's smaller total keeps the first."""
        self.total = max(self.total, total)
        self.update(self.total - left)

    def finish(self) -> None:
        """The task is complete: a last bar (ended by a newline) or log line."""
        self.done = self.total
        if self._terminal is None or self._shown is not None:  # a bar drawn ends its line
            self._show(self._now(), final=True)

    def rate(self) -> float | None:
        """Units per second so far (None in the first second: too little to tell)."""
        elapsed = self._now() - self._started
        return self.done / elapsed if elapsed >= RATE_AFTER_SECONDS else None

    def eta_seconds(self) -> float | None:
        """Seconds still needed at the rate so far (None until there is a rate)."""
        rate = self.rate()
        return (self.total - self.done) / rate if rate else None

    def describe(self) -> str:
        """ "120 of 365 days"."""
        return f"{self.done:.0f} of {self.total:.0f} {self.unit}"

    def _show(self, moment: float, *, final: bool = False) -> None:
        self._shown = moment
        if self._terminal is not None:
            self._bar(final=final)
            return
        rate, eta = self.rate(), self.eta_seconds()
        log.info(
            f"{self.task} {'done' if final else 'progress'}",
            source=self.subject,
            done=round(self.done, 1),
            total=round(self.total, 1),
            unit=self.unit,
            percent=round(100 * self.done / self.total, 1) if self.total else 100.0,
            rate_per_s=None if rate is None else round(rate, 2),
            eta_s=None if eta is None or final else round(eta),
            elapsed_s=round(moment - self._started, 1),
        )

    def _bar(self, *, final: bool) -> None:
        assert self._terminal is not None
        share = self.done / self.total if self.total else 1.0
        filled = round(BAR_WIDTH * share)
        eta = self.eta_seconds()
        tail = "done" if final else ("ETA " + human_duration(eta) if eta is not None else "")
        text = (
            f"{self.task} {self.subject} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
            f"{self.describe()} {tail}"
        )
        # \r and "erase line" redraw in place; the final bar keeps its line.
        self._terminal.write(f"\r\x1b[K{text}{chr(10) if final else ''}")
        self._terminal.flush()
