"""Brand overview's Messenger row: Meta's own figures and the 24 h reply window."""

from __future__ import annotations

from .grafana import Board, thresholds, value_text
from .vocabulary import BRAND_SOURCE, COMPLIANCE_STEPS, MINUTES_STEPS, stat

# The badge: held (1) or not (0).
BADGE = {"1": ("very responsive", "green"), "0": ("not very responsive", "orange")}
# Time left of a reply window: red under 2 hours, orange under 6.
WINDOW_STEPS = thresholds(("red", None), ("orange", 7200), ("green", 21600))


def messenger_row(b: Board) -> None:
    """Meta's response rate and time per Messenger source, the badge, the window left."""
    b.row("Messenger: Meta's figures (last 7 days) and the reply window")
    b.add(
        stat(
            "Meta response rate",
            "Meta's response rate per Messenger source over the last 7 days: conversations a"
            " person started (first message after 24 h of silence) that the Page answered"
            " within 24 hours. The Very responsive badge needs 90% or more.",
            (f"webcare_meta_response_rate{{{BRAND_SOURCE}}}", "{{source}}"),
            text_mode="value_and_name",
            unit="percentunit",
            decimals=0,
            min=0,
            max=1,
            steps=COMPLIANCE_STEPS,
        ),
        6,
        5,
    )
    b.add(
        stat(
            "Meta response time",
            "Meta's response time per Messenger source over the last 7 days: the mean of the"
            " fastest 90% of times to the Page's first reply. The Very responsive badge needs"
            " under 15 minutes.",
            (f"webcare_meta_response_time_seconds{{{BRAND_SOURCE}}}", "{{source}}"),
            text_mode="value_and_name",
            unit="s",
            decimals=0,
            steps=MINUTES_STEPS,
        ),
        6,
        5,
    )
    b.add(
        stat(
            "Very responsive badge",
            "Whether the Page would hold Meta's Very responsive badge on Messenger: response"
            " rate at least 90% and response time under 15 minutes over the last 7 days.",
            (f"webcare_meta_very_responsive{{{BRAND_SOURCE}}}", "{{source}}"),
            text_mode="value_and_name",
            mappings=value_text(BADGE),
        ),
        6,
        5,
    )
    b.add(
        stat(
            "Reply window left",
            "Time until the 24 h Messenger reply window of the earliest unanswered"
            " conversation closes (after that only a human-agent tagged reply, within 7"
            " days, is allowed); empty or infinite when no conversation waits.",
            (f"webcare_messaging_window_closing_seconds{{{BRAND_SOURCE}}}", "{{source}}"),
            text_mode="value_and_name",
            unit="s",
            decimals=0,
            steps=WINDOW_STEPS,
        ),
        6,
        5,
    )
