"""Roster lookups: weekly shifts, overrides, specificity, DST nights and gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.alerts.ics import IcsShift
from monitor.alerts.models import Duty
from monitor.alerts.roster import Roster, first_gap
from monitor.config.alerts import RosterConfig

AMS = ZoneInfo("Europe/Amsterdam")
BRAND, SOURCE = "acme", "fb-acme"


def make(*, ics: tuple[IcsShift, ...] = (), **config: Any) -> Roster:
    return Roster.from_config(RosterConfig.model_validate(config), ics_events=ics)


def ams(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, *, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=AMS, fold=fold)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def who(roster: Roster, at: datetime, brand: str = BRAND, source: str = SOURCE) -> str | None:
    duty = roster.on_duty(at, brand=brand, source=source)
    return None if duty is None else duty.student


# --- weekly shifts ----------------------------------------------------------------------------


def test_weekday_evening_shift_is_half_open() -> None:
    roster = make(shifts=[{"when": "mon-fri 17:00-23:00", "student": "ann"}])
    # 2026-01-05 is a Monday.
    assert who(roster, ams(2026, 1, 5, 16, 59, 59)) is None
    assert who(roster, ams(2026, 1, 5, 17, 0)) == "ann"
    assert who(roster, ams(2026, 1, 9, 22, 59, 59)) == "ann"  # Friday
    assert who(roster, ams(2026, 1, 5, 23, 0)) is None
    assert who(roster, ams(2026, 1, 10, 18, 0)) is None  # Saturday


def test_past_midnight_shift_belongs_to_the_day_it_starts() -> None:
    roster = make(
        shifts=[
            {"when": "fri 22:00-06:00", "student": "nick"},
            {"when": "sun 23:00-01:00", "student": "sue"},
        ]
    )
    assert who(roster, ams(2026, 1, 9, 21, 59)) is None
    assert who(roster, ams(2026, 1, 9, 22, 0)) == "nick"
    assert who(roster, ams(2026, 1, 10, 2, 0)) == "nick"  # Saturday small hours
    assert who(roster, ams(2026, 1, 10, 6, 0)) is None
    # Thursday night is not Friday night.
    assert who(roster, ams(2026, 1, 9, 2, 0)) is None
    # Sunday's shift runs into Monday: the week wraps.
    assert who(roster, ams(2026, 1, 12, 0, 30)) == "sue"
    assert who(roster, ams(2026, 1, 12, 1, 0)) is None


def test_duty_carries_backup_and_lead_and_the_roster_lead_fills_in() -> None:
    roster = make(
        lead="lars",
        shifts=[
            {"when": "mon 09:00-17:00", "student": "ann", "backup": "bob", "lead": "lea"},
            {"when": "tue 09:00-17:00", "student": "cat"},
        ],
    )
    assert roster.on_duty(ams(2026, 1, 5, 10, 0), brand=BRAND, source=SOURCE) == Duty(
        student="ann", backup="bob", lead="lea"
    )
    assert roster.on_duty(ams(2026, 1, 6, 10, 0), brand=BRAND, source=SOURCE) == Duty(
        student="cat", backup=None, lead="lars"
    )
    assert roster.lead_for(ams(2026, 1, 5, 10, 0), brand=BRAND, source=SOURCE) == "lea"
    # A gap: nobody on duty, the roster's lead is the one to tell.
    assert roster.lead_for(ams(2026, 1, 7, 10, 0), brand=BRAND, source=SOURCE) == "lars"
    assert make().lead_for(ams(2026, 1, 7, 10, 0), brand=BRAND, source=SOURCE) is None


def test_naive_instants_are_refused() -> None:
    roster = make(shifts=[{"when": "mon 09:00-17:00", "student": "ann"}])
    with pytest.raises(ValueError, match="naive"):
        roster.on_duty(datetime(2026, 1, 5, 10, 0), brand=BRAND, source=SOURCE)
    with pytest.raises(ValueError, match="naive"):
        roster.gaps(datetime(2026, 1, 5), utc(2026, 1, 6), brand=BRAND, source=SOURCE)


# --- overrides (and swaps) --------------------------------------------------------------------

WEEKDAY_EVENINGS = {"when": "mon-fri 17:00-23:00", "student": "ann", "lead": "lea"}


def test_whole_day_override_beats_the_shift() -> None:
    roster = make(shifts=[WEEKDAY_EVENINGS], overrides=[{"date": "2026-01-06", "student": "bob"}])
    assert who(roster, ams(2026, 1, 6, 0, 0)) == "bob"
    assert who(roster, ams(2026, 1, 6, 18, 0)) == "bob"
    assert who(roster, ams(2026, 1, 6, 23, 59, 59)) == "bob"
    assert who(roster, ams(2026, 1, 7, 0, 0)) is None
    assert who(roster, ams(2026, 1, 7, 18, 0)) == "ann"


def test_a_swap_is_an_override_for_the_shift_hours_and_keeps_the_shift_lead() -> None:
    roster = make(
        lead="lars",
        shifts=[WEEKDAY_EVENINGS],
        overrides=[{"date": "2026-01-06", "hours": "17:00-23:00", "student": "bob"}],
    )
    assert who(roster, ams(2026, 1, 6, 16, 59)) is None
    duty = roster.on_duty(ams(2026, 1, 6, 20, 0), brand=BRAND, source=SOURCE)
    assert duty == Duty(student="bob", backup=None, lead="lea")
    assert who(roster, ams(2026, 1, 5, 20, 0)) == "ann"


def test_override_hours_past_midnight_and_ranged_overrides() -> None:
    roster = make(
        shifts=[WEEKDAY_EVENINGS],
        overrides=[
            {"date": "2026-01-06", "hours": "22:00-02:00", "student": "nick"},
            # Naive: local wall time in the roster's zone.
            {"start": "2026-01-08T20:00:00", "end": "2026-01-09T01:00:00", "student": "wall"},
            # With an offset: instants.
            {"start": "2026-01-12T18:00:00Z", "end": "2026-01-12T19:00:00Z", "student": "utc"},
        ],
    )
    assert who(roster, ams(2026, 1, 6, 21, 59)) == "ann"
    assert who(roster, ams(2026, 1, 6, 22, 0)) == "nick"
    assert who(roster, ams(2026, 1, 7, 1, 59)) == "nick"
    assert who(roster, ams(2026, 1, 7, 2, 0)) is None
    assert who(roster, ams(2026, 1, 8, 19, 59)) == "ann"
    assert who(roster, ams(2026, 1, 8, 20, 0)) == "wall"
    assert who(roster, ams(2026, 1, 9, 0, 59)) == "wall"
    assert who(roster, ams(2026, 1, 9, 1, 0)) is None
    assert who(roster, utc(2026, 1, 12, 17, 59)) == "ann"  # 18:59 local
    assert who(roster, utc(2026, 1, 12, 18, 0)) == "utc"
    assert who(roster, utc(2026, 1, 12, 19, 0)) == "ann"


def test_overlapping_overrides_the_later_start_wins_then_the_first_listed() -> None:
    roster = make(
        overrides=[
            {"date": "2026-01-06", "student": "all-day"},
            {"date": "2026-01-06", "hours": "12:00-14:00", "student": "lunch-swap"},
            {"date": "2026-01-06", "hours": "12:00-14:00", "student": "listed-second"},
        ]
    )
    assert who(roster, ams(2026, 1, 6, 11, 59)) == "all-day"
    assert who(roster, ams(2026, 1, 6, 12, 30)) == "lunch-swap"
    assert who(roster, ams(2026, 1, 6, 14, 0)) == "all-day"


def test_nested_weekly_shift_wins_inside_a_longer_one() -> None:
    roster = make(
        shifts=[
            {"when": "mon-fri 09:00-17:00", "student": "day"},
            {"when": "wed 12:00-13:00", "student": "lunch"},
        ]
    )
    assert who(roster, ams(2026, 1, 7, 11, 0)) == "day"
    assert who(roster, ams(2026, 1, 7, 12, 30)) == "lunch"
    assert who(roster, ams(2026, 1, 7, 13, 0)) == "day"


# --- brand / source specificity ---------------------------------------------------------------


def test_source_beats_brand_beats_everyone() -> None:
    roster = make(
        shifts=[
            {"when": "mon-sun 00:00-00:00", "student": "anyone"},
            {"when": "mon-sun 00:00-00:00", "student": "acme-team", "brands": ["acme"]},
            {"when": "mon-sun 00:00-00:00", "student": "fb-only", "sources": ["fb-acme"]},
            {
                "when": "mon 00:00-00:00",
                "student": "both",
                "brands": ["acme"],
                "sources": ["fb-acme"],
            },
        ]
    )
    at = ams(2026, 1, 6, 10, 0)  # Tuesday
    assert who(roster, at, "acme", "fb-acme") == "fb-only"
    assert who(roster, at, "acme", "forum-acme") == "acme-team"
    assert who(roster, at, "globex", "fb-globex") == "anyone"
    # Naming brand and source is the most specific of all.
    assert who(roster, ams(2026, 1, 5, 10, 0), "acme", "fb-acme") == "both"
    # A source-specific shift listed for another brand does not apply.
    assert who(roster, at, "globex", "fb-acme") == "fb-only"


def test_an_override_for_everyone_beats_a_source_specific_shift() -> None:
    roster = make(
        shifts=[{"when": "mon-fri 17:00-23:00", "student": "ann", "sources": ["fb-acme"]}],
        overrides=[{"date": "2026-01-06", "student": "team-wide"}],
    )
    assert who(roster, ams(2026, 1, 6, 18, 0)) == "team-wide"


def test_among_overrides_the_more_specific_wins_and_others_are_untouched() -> None:
    roster = make(
        shifts=[WEEKDAY_EVENINGS],
        overrides=[
            {"date": "2026-01-06", "hours": "18:00-19:00", "student": "all-brands"},
            {"date": "2026-01-06", "student": "acme-day", "brands": ["acme"]},
        ],
    )
    assert who(roster, ams(2026, 1, 6, 18, 30), "acme", "fb-acme") == "acme-day"
    assert who(roster, ams(2026, 1, 6, 18, 30), "globex", "fb-globex") == "all-brands"
    assert who(roster, ams(2026, 1, 6, 20, 0), "globex", "fb-globex") == "ann"


# --- .ics events ------------------------------------------------------------------------------


def test_ics_events_beat_shifts_and_config_overrides_beat_ics_events() -> None:
    events = (
        IcsShift(
            student="ics-utc",
            start=utc(2026, 1, 6, 17, 0),
            end=utc(2026, 1, 6, 19, 0),
            lead="ics-lead",
        ),
        # Floating: local wall time, like an all-day date.
        IcsShift(student="ics-day", start=datetime(2026, 1, 7), end=datetime(2026, 1, 8)),
        IcsShift(
            student="globex-only",
            start=datetime(2026, 1, 8, 17),
            end=datetime(2026, 1, 8, 23),
            brands=("globex",),
        ),
    )
    roster = make(
        ics=events,
        shifts=[WEEKDAY_EVENINGS],
        overrides=[{"date": "2026-01-06", "hours": "18:30-19:30", "student": "override"}],
    )
    assert who(roster, ams(2026, 1, 6, 17, 59)) == "ann"
    assert roster.on_duty(ams(2026, 1, 6, 18, 0), brand=BRAND, source=SOURCE) == Duty(
        student="ics-utc", lead="ics-lead"
    )
    assert who(roster, ams(2026, 1, 6, 18, 45)) == "override"
    assert who(roster, ams(2026, 1, 7, 0, 0)) == "ics-day"
    assert who(roster, ams(2026, 1, 7, 23, 59)) == "ics-day"
    assert who(roster, ams(2026, 1, 8, 18, 0), "acme", "fb-acme") == "ann"
    assert who(roster, ams(2026, 1, 8, 18, 0), "globex", "fb-globex") == "globex-only"


# --- DST: the night shift across the Europe/Amsterdam changes ---------------------------------

NIGHTS = [
    {"when": "sat 14:00-22:00", "student": "day"},
    {"when": "sat 22:00-06:00", "student": "night", "backup": "omar", "lead": "lea"},
    {"when": "sun 06:00-14:00", "student": "morning"},
]


def test_spring_forward_night_shift() -> None:
    roster = make(shifts=NIGHTS)
    # 2026-03-29 02:30 does not exist; zoneinfo reads it as 01:30 UTC = 03:30 CEST.
    assert roster.on_duty(ams(2026, 3, 29, 2, 30), brand=BRAND, source=SOURCE) == Duty(
        student="night", backup="omar", lead="lea"
    )
    assert who(roster, utc(2026, 3, 28, 20, 59)) == "day"  # 21:59 CET
    assert who(roster, utc(2026, 3, 28, 21, 0)) == "night"  # 22:00 CET
    assert who(roster, utc(2026, 3, 29, 0, 59, 59)) == "night"  # 01:59:59 CET
    assert who(roster, utc(2026, 3, 29, 1, 0)) == "night"  # 03:00 CEST
    assert who(roster, utc(2026, 3, 29, 3, 59)) == "night"  # 05:59 CEST
    assert who(roster, utc(2026, 3, 29, 4, 0)) == "morning"  # 06:00 CEST
    # The night lasts 7 real hours: 21:00-04:00 UTC.
    night_only = make(shifts=[NIGHTS[1]])
    assert night_only.gaps(
        utc(2026, 3, 28, 12), utc(2026, 3, 29, 12), brand=BRAND, source=SOURCE
    ) == [(utc(2026, 3, 28, 12), utc(2026, 3, 28, 21)), (utc(2026, 3, 29, 4), utc(2026, 3, 29, 12))]


def test_fall_back_night_shift_and_the_repeated_hour() -> None:
    roster = make(shifts=NIGHTS)
    assert who(roster, ams(2026, 10, 25, 2, 30, fold=0)) == "night"  # 00:30 UTC, CEST
    assert who(roster, ams(2026, 10, 25, 2, 30, fold=1)) == "night"  # 01:30 UTC, CET
    assert who(roster, utc(2026, 10, 24, 20, 0)) == "night"  # 22:00 CEST
    # 05:30 CET: the night has an extra hour, the morning shift has not started yet.
    assert who(roster, utc(2026, 10, 25, 4, 30)) == "night"
    assert who(roster, utc(2026, 10, 25, 5, 0)) == "morning"  # 06:00 CET
    night_only = make(shifts=[NIGHTS[1]])
    gaps = night_only.gaps(utc(2026, 10, 24, 12), utc(2026, 10, 25, 12), brand=BRAND, source=SOURCE)
    # The night lasts 9 real hours: 20:00-05:00 UTC.
    assert gaps == [
        (utc(2026, 10, 24, 12), utc(2026, 10, 24, 20)),
        (utc(2026, 10, 25, 5), utc(2026, 10, 25, 12)),
    ]


def test_handover_inside_the_spring_gap() -> None:
    roster = make(
        shifts=[
            {"when": "sat 22:00-02:30", "student": "early"},
            {"when": "sun 02:30-06:00", "student": "late"},
        ]
    )
    assert who(roster, utc(2026, 3, 29, 0, 59)) == "early"  # 01:59 CET
    # 02:30 never happens: the late shift opens at the first instant that exists, 03:00 CEST.
    assert who(roster, utc(2026, 3, 29, 1, 0)) == "late"
    assert roster.gaps(utc(2026, 3, 28, 21), utc(2026, 3, 29, 4), brand=BRAND, source=SOURCE) == []


def test_handover_inside_the_repeated_hour_follows_the_wall_clock() -> None:
    roster = make(
        shifts=[
            {"when": "sat 22:00-02:30", "student": "early"},
            {"when": "sun 02:30-06:00", "student": "late"},
        ]
    )
    assert who(roster, ams(2026, 10, 25, 2, 15, fold=0)) == "early"
    assert who(roster, ams(2026, 10, 25, 2, 45, fold=0)) == "late"
    # The wall clock reads 02:00-02:30 again: it is the early shift's time again.
    assert who(roster, ams(2026, 10, 25, 2, 15, fold=1)) == "early"
    assert who(roster, ams(2026, 10, 25, 2, 45, fold=1)) == "late"
    assert (
        roster.gaps(utc(2026, 10, 24, 20), utc(2026, 10, 25, 5), brand=BRAND, source=SOURCE) == []
    )


def test_override_in_the_repeated_hour_covers_both_occurrences() -> None:
    roster = make(overrides=[{"date": "2026-10-25", "hours": "02:00-03:00", "student": "x"}])
    assert who(roster, utc(2026, 10, 24, 23, 59)) is None  # 01:59 CEST
    assert who(roster, utc(2026, 10, 25, 0, 0)) == "x"  # 02:00 CEST
    assert who(roster, utc(2026, 10, 25, 1, 59)) == "x"  # 02:59 CET
    assert who(roster, utc(2026, 10, 25, 2, 0)) is None  # 03:00 CET
    gaps = roster.gaps(utc(2026, 10, 24, 22), utc(2026, 10, 25, 3), brand=BRAND, source=SOURCE)
    assert gaps == [
        (utc(2026, 10, 24, 22), utc(2026, 10, 25, 0)),
        (utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)),
    ]


# --- gaps -------------------------------------------------------------------------------------


def test_gaps_over_a_week_of_evenings_with_a_swap_and_a_hole() -> None:
    roster = make(
        shifts=[{"when": "mon-fri 17:00-23:00", "student": "ann"}],
        overrides=[
            {"date": "2026-01-07", "hours": "23:00-01:00", "student": "late"},
            {"date": "2026-01-08", "hours": "20:00-21:00", "student": "swap"},
        ],
    )
    start, end = ams(2026, 1, 5, 12, 0), ams(2026, 1, 8, 12, 0)
    assert roster.gaps(start, end, brand=BRAND, source=SOURCE) == [
        (utc(2026, 1, 5, 11), utc(2026, 1, 5, 16)),  # Monday 12:00-17:00 local
        (utc(2026, 1, 5, 22), utc(2026, 1, 6, 16)),
        (utc(2026, 1, 6, 22), utc(2026, 1, 7, 16)),
        (utc(2026, 1, 8, 0), utc(2026, 1, 8, 11)),  # the late override ran to 01:00
    ]
    # The swap inside Thursday's shift leaves no hole.
    assert roster.gaps(ams(2026, 1, 8, 17), ams(2026, 1, 8, 23), brand=BRAND, source=SOURCE) == []
    assert first_gap(
        roster, ams(2026, 1, 5, 18), timedelta(days=7), brand=BRAND, source=SOURCE
    ) == (utc(2026, 1, 5, 22), utc(2026, 1, 6, 16))
    assert roster.gaps(end, start, brand=BRAND, source=SOURCE) == []


def test_gaps_per_brand_and_an_empty_roster() -> None:
    roster = make(shifts=[{"when": "mon-sun 00:00-00:00", "student": "acme", "brands": ["acme"]}])
    window = (utc(2026, 1, 5), utc(2026, 1, 12))
    assert roster.gaps(*window, brand="acme", source="fb-acme") == []
    assert roster.gaps(*window, brand="globex", source="fb-globex") == [window]
    assert make().gaps(*window, brand="acme", source="fb-acme") == [window]


def test_gaps_agree_with_on_duty_minute_by_minute_across_both_dst_nights() -> None:
    roster = make(
        shifts=[
            {"when": "sat 22:00-02:30", "student": "early"},
            {"when": "sun 03:15-06:00", "student": "late"},
            NIGHTS[0],
        ],
        overrides=[
            {"date": "2026-10-25", "hours": "02:40-02:50", "student": "blip"},
            {"start": "2026-03-29T02:10:00", "end": "2026-03-29T03:20:00", "student": "gap"},
        ],
        ics=(
            IcsShift(student="u", start=utc(2026, 10, 25, 6), end=utc(2026, 10, 25, 7)),
            IcsShift(student="f", start=datetime(2026, 3, 29, 8), end=datetime(2026, 3, 29, 9)),
        ),
    )
    for start in (utc(2026, 3, 28, 12), utc(2026, 10, 24, 12)):
        end = start + timedelta(hours=24)
        gaps = roster.gaps(start, end, brand=BRAND, source=SOURCE)
        at = start
        while at < end:
            in_gap = any(s <= at < e for s, e in gaps)
            assert in_gap == (who(roster, at) is None), at
            at += timedelta(minutes=1)
