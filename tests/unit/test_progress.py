"""Progress of long work: log lines with done/total, rate and ETA; a bar on a terminal."""

from __future__ import annotations

import io

import pytest

from monitor import progress as progress_module
from monitor.progress import Progress


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, object]]]:
    lines: list[tuple[str, dict[str, object]]] = []

    class Capture:
        def info(self, event: str, **fields: object) -> None:
            lines.append((event, fields))

    monkeypatch.setattr(progress_module, "log", Capture())
    return lines


def test_log_lines_at_once_then_every_ten_seconds_with_rate_and_eta(
    logged: list[tuple[str, dict[str, object]]],
) -> None:
    ticks = Ticks()
    work = Progress("backfill", "acme-fb", total=365, unit="days", now=ticks)
    ticks.now += 2
    work.update(10)  # the first line comes at once: never silent at the start
    for done in range(11, 120):
        ticks.now += 0.125  # exact in binary: the 10 s mark is hit, not missed by rounding
        work.update(done)
    events = [event for event, _ in logged]
    assert events == ["backfill progress", "backfill progress"]  # at 2 s and at 12 s
    _, second = logged[1]
    assert second["source"] == "acme-fb" and second["unit"] == "days"
    assert second["total"] == 365 and second["done"] == 90  # 80 updates later: 12 s in
    assert second["rate_per_s"] == 7.5  # 90 days in 12 s
    assert second["eta_s"] == 37  # 275 days left at 7.5 a second
    assert work.describe() == "119 of 365 days"
    work.finish()
    assert logged[-1][0] == "backfill done" and logged[-1][1]["done"] == 365


def test_no_rate_nor_eta_in_the_first_second(
    logged: list[tuple[str, dict[str, object]]],
) -> None:
    ticks = Ticks()
    work = Progress("backfill", "acme-fb", total=8, unit="days", now=ticks)
    ticks.now += 0.002
    work.update(7)  # a first page that covered 7 of 8 days in 2 ms
    assert (logged[0][1]["rate_per_s"], logged[0][1]["eta_s"]) == (None, None)
    ticks.now += 1
    assert work.rate() == pytest.approx(7 / 1.002)


def test_done_never_goes_back_and_a_resumed_smaller_total_keeps_the_first() -> None:
    work = Progress("backfill", "forum", total=200, unit="topics", now=Ticks())
    work.remaining(150, 200)
    assert work.describe() == "50 of 200 topics"
    work.remaining(140, 150)  # a resumed poll counts only what it had left
    assert work.describe() == "60 of 200 topics"
    work.update(10)
    assert work.done == 60


def test_a_terminal_gets_a_bar_after_a_second_and_its_line_ends_when_done(
    logged: list[tuple[str, dict[str, object]]],
) -> None:
    ticks, terminal = Ticks(), io.StringIO()
    work = Progress("recompute", "acme-fb", total=1000, unit="items", terminal=terminal, now=ticks)
    ticks.now += 0.5
    work.update(100)
    assert terminal.getvalue() == ""  # a quick task stays quiet
    ticks.now += 1.5
    work.update(500)
    drawn = terminal.getvalue()
    assert drawn.startswith("\r\x1b[Krecompute acme-fb [")
    assert "500 of 1000 items ETA 2s" in drawn and not drawn.endswith("\n")
    work.finish()
    assert terminal.getvalue().endswith("1000 of 1000 items done\n")
    assert logged == []  # a bar instead of log lines, not both


def test_a_quick_task_on_a_terminal_draws_nothing() -> None:
    terminal = io.StringIO()
    work = Progress("backfill", "acme-fb", total=8, unit="days", terminal=terminal, now=Ticks())
    work.update(8)
    work.finish()
    assert terminal.getvalue() == ""
