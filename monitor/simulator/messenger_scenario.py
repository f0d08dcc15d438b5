"""The demo's Messenger traffic: a week of private conversations, then live messages.

Most conversations are answered within minutes (so Meta's response rate and time have data),
a few recent ones wait (their 24 h reply windows are open) and one from days ago lost its
window.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.clock import Clock
from monitor.simulator.graph_api import FakeGraphApi

PEOPLE = ("Ann", "Bas", "Carla", "Dewi", "Emre", "Fleur", "Gijs", "Hana", "Ivo", "Jet")
QUESTIONS = (
    "Hi, my order has not arrived yet",
    "Can I change my delivery address?",
    "Is the blue one back in stock?",
    "I was charged twice",
    "How do I return this?",
)
REPLIES = ("Hi! Let me check that for you.", "Sorted, see your e-mail.", "Thanks, done!")


@dataclass(frozen=True, kw_only=True)
class MessengerStats:
    """What the seeded history holds."""

    conversations: int
    answered: int


def _person(number: int) -> tuple[str, str]:
    return (f"2400000000{number:04d}", PEOPLE[number % len(PEOPLE)])


def seed_messenger(api: FakeGraphApi, *, now: datetime, seed: int = 19) -> MessengerStats:
    """Conversations over the last 6 days; the last three of them still wait for the Page."""
    rng = random.Random(seed)
    total, answered = 14, 0
    for number in range(total):
        conversation = api.add_conversation(_person(number))
        if number == 0:  # asked 3 days ago, never answered: a lost window
            at = now - timedelta(days=3)
        elif number >= total - 3:  # recent and waiting: their windows are open
            at = now - timedelta(hours=rng.uniform(1, 20))
        else:
            at = now - timedelta(days=rng.uniform(1.2, 6), hours=rng.uniform(0, 8))
        api.add_message(
            conversation, created_time=at, message=rng.choice(QUESTIONS), from_page=False
        )
        if 0 < number < total - 3:
            reply = at + timedelta(minutes=rng.uniform(2, 12))
            api.add_message(
                conversation, created_time=reply, message=rng.choice(REPLIES), from_page=True
            )
            answered += 1
    return MessengerStats(conversations=total, answered=answered)


async def messenger_live_traffic(
    api: FakeGraphApi,
    clock: Clock,
    *,
    every: tuple[float, float] = (6.0, 15.0),
    answer_within: tuple[float, float] = (10.0, 60.0),
    answer_share: float = 0.8,
    seed: int = 23,
) -> None:
    """Keep starting conversations and, a little later, the Page's replies, until cancelled."""
    rng = random.Random(seed)
    pending: list[asyncio.Task[None]] = []
    number = 100

    async def reply_later(conversation: str, delay: float) -> None:
        await clock.sleep(delay)
        api.add_message(
            conversation, created_time=clock.now(), message=rng.choice(REPLIES), from_page=True
        )

    try:
        while True:
            await clock.sleep(rng.uniform(*every))
            number += 1
            conversation = api.add_conversation(_person(number))
            api.add_message(
                conversation,
                created_time=clock.now(),
                message=rng.choice(QUESTIONS),
                from_page=False,
            )
            if rng.random() < answer_share:
                delay = rng.uniform(*answer_within)
                pending.append(asyncio.create_task(reply_later(conversation, delay)))
            pending = [t for t in pending if not t.done()]
    finally:
        for task in pending:
            task.cancel()
