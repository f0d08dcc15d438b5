"""Benchmark: monitor.sla.calendar against businesstimedelta, same calendars, same inputs.

Run: .venv/bin/python -m tests.bench.bench_calendar [--pairs N] [--seed S] [--csv FILE]
(needs the `bench` extra: pip install -e '.[bench]'). Prints ops/second for covered-time
differences and due-time additions, the speed ratio, and every input where the two libraries
disagree, grouped by the reason; a sample of inputs is settled by an independent
minute-by-minute wall-time reference. Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

if __package__ in (None, ""):  # run as a script: make `monitor` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import businesstimedelta as btd  # type: ignore[import-untyped]
import holidays
import pytz  # type: ignore[import-untyped]

from monitor.sla.calendar import WeeklyCalendar, build_calendar

ZONE = "Europe/Amsterdam"
YEAR = 2026
WEEK = 7 * 86400


@dataclass
class Case:
    """One calendar in both libraries, plus what the reference needs to know about it."""

    name: str
    hours: list[str]
    ours: WeeklyCalendar
    theirs: Any  # a businesstimedelta rule
    country: str | None = None
    overnight: bool = False  # has shifts that run past midnight


def make_cases() -> list[Case]:
    tz = pytz.timezone(ZONE)
    weekdays = [0, 1, 2, 3, 4]
    every_day = list(range(7))

    def rule(start: clock, end: clock, days: list[int]) -> Any:
        return btd.WorkDayRule(start_time=start, end_time=end, working_days=days, tz=tz)

    office = rule(clock(9), clock(17), weekdays)
    nl_holidays = holidays.country_holidays("NL", years=range(YEAR - 1, YEAR + 2))
    cases = [
        Case("office", ["mon-fri 09:00-17:00"], _ours(["mon-fri 09:00-17:00"]), office),
        Case(
            "split",
            ["mon-fri 09:00-12:30", "mon-fri 13:30-17:30"],
            _ours(["mon-fri 09:00-12:30", "mon-fri 13:30-17:30"]),
            btd.Rules(
                [
                    rule(clock(9), clock(12, 30), weekdays),
                    rule(clock(13, 30), clock(17, 30), weekdays),
                ]
            ),
        ),
        Case(
            "evening",
            ["mon-sun 18:00-02:00"],
            _ours(["mon-sun 18:00-02:00"]),
            rule(clock(18), clock(2), every_day),
            overnight=True,
        ),
        Case(
            "office+NL",
            ["mon-fri 09:00-17:00"],
            _ours(["mon-fri 09:00-17:00"], country="NL"),
            btd.Rules([office, btd.HolidayRule(nl_holidays, tz=tz)]),
            country="NL",
        ),
    ]
    return cases


def _ours(hours: list[str], country: str | None = None) -> WeeklyCalendar:
    return build_calendar("bench", timezone=ZONE, hours=hours, holidays_country=country)


class MinuteReference:
    """Independent wall-time scan: every boundary here is a whole UTC minute, so one zoneinfo
    lookup per minute settles it (Amsterdam offsets are whole hours, hours are HH:MM)."""

    def __init__(self, case: Case) -> None:
        self.tz = ZoneInfo(ZONE)
        self.weekly: dict[int, list[tuple[clock, clock]]] = {d: [] for d in range(7)}
        for spec in case.hours:
            days, hours = spec.split()
            first, last = days.split("-")
            names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            start_text, end_text = hours.split("-")
            start = clock.fromisoformat(start_text)
            end = clock.fromisoformat(end_text)
            for d in range(names.index(first), names.index(last) + 1):
                self.weekly[d].append((start, end))
        self.holidays = holidays.country_holidays(case.country) if case.country else None

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        if self.holidays is not None and day in self.holidays:
            return []
        result = []
        for start, end in self.weekly[day.weekday()]:
            end_day = day + timedelta(days=1) if end <= start else day
            result.append((datetime.combine(day, start), datetime.combine(end_day, end)))
        return result

    def open_at(self, second: int) -> bool:
        wall = datetime.fromtimestamp(second, self.tz).replace(tzinfo=None)
        for day in (wall.date(), wall.date() - timedelta(days=1)):
            if any(a <= wall < b for a, b in self._intervals(day)):
                return True
        return False

    def covered(self, start: int, end: int) -> int:
        total = 0
        for minute in range(start // 60, -(-end // 60)):
            lo, hi = max(start, minute * 60), min(end, minute * 60 + 60)
            if lo < hi and self.open_at(lo):
                total += hi - lo
        return total

    def add(self, start: int, seconds: int) -> int:
        minute = start // 60
        while True:
            lo, hi = max(start, minute * 60), minute * 60 + 60
            if self.open_at(lo):
                if hi - lo >= seconds:
                    return lo + seconds
                seconds -= hi - lo
            minute += 1


def reason(case: Case, start: datetime, end: datetime) -> str:
    """Why businesstimedelta differs here: the feature of the input that trips it."""
    tz = ZoneInfo(ZONE)
    if case.overnight and case.ours.is_open(start):
        return (
            "start inside an overnight shift: WorkDayRule.next() keeps today's shift only while"
            " the local time is before max(start, end) = 18:00, so a start at 18:00-24:00 skips"
            " to tomorrow's shift and one at 00:00-02:00 to today's 18:00: the running shift"
            " is lost"
        )
    # An end just before the repeated hour (00:xx UTC) trips it too, so look 1 h past the end.
    if start.astimezone(tz).utcoffset() != (end + timedelta(hours=1)).astimezone(tz).utcoffset():
        return (
            "DST change inside the interval: pytz localize(is_dst=False) puts the 02:00 end"
            " of the shift on the autumn night at the second 02:00 (CET), so it also counts the"
            " first 02:00-03:00 (CEST) hour, when the wall clock already reads past the end"
        )
    if case.country:
        table = holidays.country_holidays(case.country)
        day = start.astimezone(tz).date()
        while day <= end.astimezone(tz).date():
            if day in table:
                return "public holiday inside the interval (HolidayRule)"
            day += timedelta(days=1)
    return "unexplained"


def timed(fn: Callable[[], list[Any]], repeat: int) -> tuple[list[Any], float]:
    """The function's result and its best wall time over `repeat` runs."""
    best = float("inf")
    result: list[Any] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return result, best


@dataclass
class Disagreement:
    """One input where the libraries differ: covered seconds (diff) or due epoch (add)."""

    case: str
    op: str
    index: int
    ours: float
    theirs: float
    reason: str
    ours_ok: bool | None = None  # set when the reference has settled it
    theirs_ok: bool | None = None


def fmt(dt: datetime) -> str:
    return dt.astimezone(ZoneInfo(ZONE)).strftime("%a %Y-%m-%d %H:%M:%S %Z")


def run(pairs: int, seed: int, csv_path: str | None, samples: int) -> None:
    rng = random.Random(seed)
    year_start = int(datetime(YEAR, 1, 1, tzinfo=UTC).timestamp())
    starts = [year_start + rng.randrange(365 * 86400) for _ in range(pairs)]
    inputs = [
        (datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(s + rng.randrange(WEEK), UTC))
        for s in starts
    ]
    targets = [rng.randrange(60, 16 * 3600) for _ in range(pairs)]
    print(
        f"Business-calendar benchmark: {pairs:,} (start, end) pairs, starts uniform over"
        f" {YEAR}, spans up to 7 days; due times for targets of 1 min - 16 h; zone {ZONE};"
        f" seed {seed}"
    )
    print(f"python {sys.version.split()[0]}, businesstimedelta vs monitor.sla.calendar\n")
    header = (
        f"{'calendar':<11}{'op':<6}{'ours ops/s':>13}{'btd ops/s':>12}{'ratio':>9}{'disagree':>10}"
    )
    print(header)
    print("-" * len(header))
    disagreements: list[Disagreement] = []
    totals = {"ours": 0.0, "btd": 0.0, "n": 0}
    for case in make_cases():
        ours, theirs = case.ours, case.theirs

        # Each timed function returns the libraries' own result objects; they are turned
        # into comparable numbers afterwards, outside the timing.
        def ours_diff(cal: WeeklyCalendar = ours) -> list[Any]:
            return [cal.covered_seconds(a, b) for a, b in inputs]

        def theirs_diff(rule: Any = theirs) -> list[Any]:
            return [rule.difference(a, b) for a, b in inputs]

        def ours_add(cal: WeeklyCalendar = ours) -> list[Any]:
            return [cal.add_covered(a, t) for (a, _), t in zip(inputs, targets, strict=True)]

        def theirs_add(rule: Any = theirs) -> list[Any]:
            return [
                a + btd.BusinessTimeDelta(rule, seconds=t)
                for (a, _), t in zip(inputs, targets, strict=True)
            ]

        for op, mine, other in (("diff", ours_diff, theirs_diff), ("add", ours_add, theirs_add)):
            mine_raw, mine_time = timed(mine, repeat=3)
            other_raw, other_time = timed(other, repeat=1)
            if op == "diff":
                mine_result = [float(x) for x in mine_raw]
                other_result = [x.timedelta.total_seconds() for x in other_raw]
            else:
                mine_result = [x.timestamp() for x in mine_raw]
                other_result = [x.timestamp() for x in other_raw]
            found = 0
            for i, (x, y) in enumerate(zip(mine_result, other_result, strict=True)):
                if x == y:
                    continue
                found += 1
                a, b = inputs[i]
                # For due times the interesting interval runs to the later of the two answers.
                end = b if op == "diff" else datetime.fromtimestamp(max(x, y), UTC)
                disagreements.append(Disagreement(case.name, op, i, x, y, reason(case, a, end)))
            ours_rate, btd_rate = pairs / mine_time, pairs / other_time
            totals["ours"] += mine_time
            totals["btd"] += other_time
            totals["n"] += pairs
            print(
                f"{case.name:<11}{op:<6}{ours_rate:>13,.0f}{btd_rate:>12,.0f}"
                f"{ours_rate / btd_rate:>8,.0f}x{found:>10,}"
            )
    print("-" * len(header))
    all_ours, all_btd = totals["n"] / totals["ours"], totals["n"] / totals["btd"]
    print(f"{'all':<17}{all_ours:>13,.0f}{all_btd:>12,.0f}{all_ours / all_btd:>8,.0f}x\n")

    settle(disagreements, inputs, targets, samples, rng)
    report(disagreements, inputs, targets)
    if csv_path:
        with open(csv_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["calendar", "op", "start_utc", "end_utc_or_target_s", "ours", "btd", "reason"]
            )
            for d in disagreements:
                start, end = inputs[d.index]
                arg = end.isoformat() if d.op == "diff" else str(targets[d.index])
                ours_text, btd_text = (
                    (str(d.ours), str(d.theirs))
                    if d.op == "diff"
                    else (_utc(d.ours).isoformat(), _utc(d.theirs).isoformat())
                )
                writer.writerow(
                    [d.case, d.op, start.isoformat(), arg, ours_text, btd_text, d.reason]
                )
        print(f"\nall {len(disagreements):,} disagreements written to {csv_path}")


def settle(
    disagreements: list[Disagreement],
    inputs: Sequence[tuple[datetime, datetime]],
    targets: Sequence[int],
    samples: int,
    rng: random.Random,
) -> None:
    """Ask the independent reference who is right, on a sample of every kind of input."""
    cases = {case.name: case for case in make_cases()}
    references = {name: MinuteReference(case) for name, case in cases.items()}
    by_key: dict[tuple[str, str, str], list[Disagreement]] = {}
    for d in disagreements:
        by_key.setdefault((d.case, d.op, d.reason), []).append(d)
    checked = ours_wrong = theirs_wrong = 0
    for group in by_key.values():
        for d in rng.sample(group, min(samples, len(group))):
            ref = references[d.case]
            a, b = inputs[d.index]
            s, e = int(a.timestamp()), int(b.timestamp())
            if d.op == "diff":
                expected = float(ref.covered(s, e))
            else:
                expected = float(ref.add(s, targets[d.index]))
            d.ours_ok, d.theirs_ok = d.ours == expected, d.theirs == expected
            checked += 1
            ours_wrong += not d.ours_ok
            theirs_wrong += not d.theirs_ok
    # Agreements matter too: a random sample of plain inputs, both operations, every calendar.
    agreed = agreed_ok = 0
    for name, case in cases.items():
        ref = references[name]
        for i in rng.sample(range(len(inputs)), min(samples, len(inputs))):
            a, b = inputs[i]
            s, e = int(a.timestamp()), int(b.timestamp())
            ok = case.ours.covered_seconds(a, b) == ref.covered(s, e)
            due = ref.add(s, targets[i])
            ok = ok and case.ours.add_covered(a, targets[i]) == datetime.fromtimestamp(due, UTC)
            agreed += 1
            agreed_ok += ok
    print(
        "Reference check (independent minute-by-minute zoneinfo wall-time scan):\n"
        f"  disagreements: up to {samples} per calendar/op/reason, {checked} checked:"
        f" monitor.sla.calendar wrong on {ours_wrong}, businesstimedelta wrong on"
        f" {theirs_wrong}\n"
        f"  random inputs: {agreed} checked (diff and add): monitor.sla.calendar right on"
        f" {agreed_ok}\n"
    )


def report(
    disagreements: list[Disagreement],
    inputs: Sequence[tuple[datetime, datetime]],
    targets: Sequence[int],
) -> None:
    print(f"Disagreements: {len(disagreements):,}")
    groups: dict[tuple[str, str, str], list[Disagreement]] = {}
    for d in disagreements:
        groups.setdefault((d.case, d.op, d.reason), []).append(d)
    for (name, op, why), group in sorted(groups.items()):
        print(f"\n  {name} {op}: {len(group):,} - {why}")
        shown = sorted(group, key=lambda d: d.ours_ok is None)[:3]  # settled ones first
        for d in shown:
            start, end = inputs[d.index]
            if op == "diff":
                what = f"end {fmt(end)}: ours {d.ours:,.0f} s, btd {d.theirs:,.0f} s"
            else:
                what = (
                    f"target {targets[d.index]:,} s: ours due {fmt(_utc(d.ours))},"
                    f" btd due {fmt(_utc(d.theirs))}"
                )
            verdict = ""
            if d.ours_ok is not None:
                verdict = (
                    f"  [reference: ours {'right' if d.ours_ok else 'WRONG'},"
                    f" btd {'right' if d.theirs_ok else 'wrong'}]"
                )
            print(f"    start {fmt(start)}, {what}{verdict}")


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=20_000, help="inputs per calendar")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--samples", type=int, default=25, help="reference checks per group")
    parser.add_argument("--csv", help="write every disagreement to this CSV file")
    args = parser.parse_args(argv)
    run(args.pairs, args.seed, args.csv, args.samples)


if __name__ == "__main__":
    main()
