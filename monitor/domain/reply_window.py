"""Messenger's standard reply window: one home for when it closes and when it was lost.

A Page may send a standard reply only within 24 hours of the person's last message (Messenger
Platform "Messaging window" policy; the human-agent tag extends it to 7 days, which is not
assumed here). The person's messages up to the Page's next reply share one window: it closes
24 hours after the last of them, and it is lost when it closed before the Page replied, or
closed while no reply has come.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

REPLY_WINDOW = timedelta(hours=24)
# The platforms whose replies have a window (a source's platform is its config type).
WINDOWED_PLATFORMS = frozenset({"messenger"})


@dataclass(frozen=True, kw_only=True)
class Said:
    """One stored message of a conversation: which, in which conversation, when, by whom."""

    id: int
    thread: str
    at: datetime
    by_page: bool


@dataclass(frozen=True, kw_only=True)
class ReplyWindow:
    """The person's messages of a conversation up to the Page's next reply, and their window."""

    thread: str
    asked: tuple[int, ...]  # the person's messages (stored ids), oldest first
    closes: datetime  # REPLY_WINDOW after the last of them
    replied_at: datetime | None  # the Page's next message; None while none came

    def lost(self, now: datetime) -> bool:
        """Whether the window closed before the Page's reply, or, with none yet, by `now`."""
        return self.closes <= (self.replied_at or now)


def reply_windows(said: Iterable[Said]) -> list[ReplyWindow]:
    """Every window of the conversations, from their messages in platform order."""
    asked: dict[str, list[Said]] = {}  # thread -> the person's messages since the Page's last
    found: list[ReplyWindow] = []

    def window(thread: str, replied_at: datetime | None) -> ReplyWindow:
        messages = asked.pop(thread)
        return ReplyWindow(
            thread=thread,
            asked=tuple(m.id for m in messages),
            closes=messages[-1].at + REPLY_WINDOW,
            replied_at=replied_at,
        )

    for message in said:
        if not message.by_page:
            asked.setdefault(message.thread, []).append(message)
        elif message.thread in asked:
            found.append(window(message.thread, message.at))
    found.extend(window(thread, None) for thread in list(asked))
    return found
