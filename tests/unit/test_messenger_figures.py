"""Meta's Messenger figures and the 24 h reply window, from messages in platform order."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import count

from monitor.domain.reply_window import Said, reply_windows
from monitor.metrics.messenger import figures

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


IDS = count(1)


def person(thread: str, hours: float) -> Said:
    return Said(id=next(IDS), thread=thread, at=at(hours), by_page=False)


def page(thread: str, hours: float) -> Said:
    return Said(id=next(IDS), thread=thread, at=at(hours), by_page=True)


def test_a_conversation_counts_after_24_hours_of_silence_and_is_answered_within_24() -> None:
    said = [
        person("a", -100),  # counted, answered after 6 min
        page("a", -100 + 0.1),
        person("a", -99),  # inside the same conversation: not counted again
        person("b", -50),  # counted, answered after 30 h: not answered in Meta's sense
        page("b", -20),
        person("c", -200),  # more than 7 days ago: not counted
    ]
    found = figures(sorted(said, key=lambda s: s.at), NOW)
    assert found.counted == 2
    assert found.rate == 0.5
    assert math.isclose(found.seconds or 0, 360)
    assert not found.very_responsive


def test_response_time_is_the_mean_of_the_fastest_90_percent() -> None:
    said = []
    for n in range(10):
        said += [person(f"t{n}", -48 + n), page(f"t{n}", -48 + n + (1 if n == 9 else 0.1))]
    found = figures(sorted(said, key=lambda s: s.at), NOW)
    assert found.rate == 1.0
    assert math.isclose(found.seconds or 0, 360)  # the one slow hour is left out
    assert found.very_responsive


def test_windows_of_unanswered_conversations_and_those_lost() -> None:
    said = [person("a", -30), person("b", -2), person("c", -3), page("c", -1)]
    found = figures(sorted(said, key=lambda s: s.at), NOW)
    assert found.windows == (at(22),)  # b's closes in 22 h; c was answered
    assert found.lost == 1  # a's closed 6 h ago unanswered


def test_a_window_closes_after_the_persons_last_message_before_the_reply() -> None:
    asked = [person("a", -40), person("a", -30)]
    said = [*asked, page("a", -10), person("a", -5)]
    first, second = reply_windows(said)
    assert first.asked == tuple(s.id for s in asked)
    assert (first.closes, first.replied_at) == (at(-6), at(-10))
    assert not first.lost(NOW)  # answered 4 h before it closed
    assert (second.closes, second.replied_at) == (at(19), None)
    assert not second.lost(NOW) and second.lost(at(19))  # lost once it closes unanswered


def test_a_reply_after_the_window_closed_is_a_lost_window_too() -> None:
    said = [person("a", -60), page("a", -30), person("b", -50), page("b", -40)]
    found = figures(said, NOW)
    assert found.lost == 1  # a's closed at -36 h, six hours before the Page's reply
    assert found.windows == ()
