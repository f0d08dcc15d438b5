"""The demo's Instagram traffic: the brand's account, a week of media with comments, then live
comments.

Most consumer comments are answered by the account (a reply under the comment) within minutes;
the two most recent ones still wait.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.clock import Clock
from monitor.simulator.graph_api import FakeGraphApi

IG_USER_ID = "17841405309211844"
IG_USERNAME = "acme.webshop"
PEOPLE = ("ann.b", "bas_v", "carla.m", "dewi_k", "emre.o", "fleur_d", "gijs.j", "hana.t")
CAPTIONS = (
    "New in: the blue collection",
    "Weekend sale, 20% off everything",
    "Behind the scenes at our warehouse",
    "Meet the team",
    "Back in stock!",
)
QUESTIONS = (
    "Is this available in size M?",
    "When does the sale end?",
    "Do you ship to Belgium?",
    "My order still has not arrived",
    "Love it! Is there a green one?",
)
REPLIES = ("Hi! Yes, it is.", "Sent you a DM!", "Thanks, we're on it.")


@dataclass(frozen=True, kw_only=True)
class InstagramStats:
    """What the seeded history holds."""

    media: tuple[str, ...]
    comments: int
    answered: int


def _person(number: int) -> tuple[str, str]:
    return (f"1784140{number:010d}", PEOPLE[number % len(PEOPLE)])


def seed_instagram(api: FakeGraphApi, *, now: datetime, seed: int = 31) -> InstagramStats:
    """The account, five media over 6 days with consumer comments; the last two wait."""
    rng = random.Random(seed)
    api.add_ig_account(IG_USER_ID, IG_USERNAME)
    media: list[str] = []
    for index, caption in enumerate(CAPTIONS):
        published = now - timedelta(days=6 - index * 1.2, hours=rng.uniform(0, 3))
        media.append(api.add_media(IG_USER_ID, created_time=published, caption=caption))
    total, answered = 12, 0
    for number in range(total):
        if number >= total - 2:  # recent and waiting for the account
            media_id = media[-1]
            at = now - timedelta(minutes=rng.uniform(5, 40))
        else:
            media_id = media[number % (len(media) - 1)]
            index = media.index(media_id)
            at = now - timedelta(days=6 - index * 1.2 - rng.uniform(0.1, 0.9))
        comment = api.add_ig_comment(
            media_id, created_time=at, text=rng.choice(QUESTIONS), author=_person(number)
        )
        if number < total - 2:
            reply = at + timedelta(minutes=rng.uniform(2, 15))
            api.add_ig_comment(
                media_id, created_time=reply, text=rng.choice(REPLIES), parent_id=comment
            )
            answered += 1
    return InstagramStats(media=tuple(media), comments=total, answered=answered)


async def instagram_live_traffic(
    api: FakeGraphApi,
    clock: Clock,
    media: tuple[str, ...],
    *,
    every: tuple[float, float] = (6.0, 15.0),
    answer_within: tuple[float, float] = (10.0, 60.0),
    answer_share: float = 0.8,
    seed: int = 37,
) -> None:
    """Keep adding consumer comments under the recent media and, a little later, the account's
    replies, until cancelled."""
    rng = random.Random(seed)
    pending: list[asyncio.Task[None]] = []
    number = 100

    async def reply_later(media_id: str, comment: str, delay: float) -> None:
        await clock.sleep(delay)
        api.add_ig_comment(
            media_id, created_time=clock.now(), text=rng.choice(REPLIES), parent_id=comment
        )

    try:
        while True:
            await clock.sleep(rng.uniform(*every))
            number += 1
            media_id = rng.choice(media[-2:])
            comment = api.add_ig_comment(
                media_id,
                created_time=clock.now(),
                text=rng.choice(QUESTIONS),
                author=_person(number),
            )
            if rng.random() < answer_share:
                delay = rng.uniform(*answer_within)
                pending.append(asyncio.create_task(reply_later(media_id, comment, delay)))
            pending = [t for t in pending if not t.done()]
    finally:
        for task in pending:
            task.cancel()
