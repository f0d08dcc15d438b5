"""The queue page's words for people: items from before tracking, in plain language."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from monitor.web.queue_render import queue_page

NOW = datetime(2026, 11, 20, 22, 40, tzinfo=UTC)


def render(older: int) -> str:
    return queue_page(
        entries=[], duty=[], now=NOW, tz=ZoneInfo("Europe/Amsterdam"), csrf="c", older=older
    )


def test_items_from_before_tracking_are_explained_in_plain_words() -> None:
    one, many = render(1), render(3)
    assert "1 older unanswered question was posted before this monitor started watching" in one
    assert "3 older unanswered questions were posted" in many
    assert "Nobody was alerted about them" in many
    assert "before this monitor started" not in render(0)
    assert "23:40:00 (Europe/Amsterdam)" in one  # the page speaks local time
