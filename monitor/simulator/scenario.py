"""Scenario scripts for the fake Facebook page: a week of history, then live traffic."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.clock import Clock
from monitor.simulator.graph_api import FakeGraphApi

CONSUMERS = [
    ("100001", "Sanne de Vries"),
    ("100002", "Daan Jansen"),
    ("100003", "Emma Bakker"),
    ("100004", "Lucas Visser"),
    ("100005", "Julia Smit"),
    ("100006", "Noah Meijer"),
    ("100007", "Tess de Boer"),
    ("100008", "Sem Mulder"),
]
QUESTIONS = [
    "Mijn bestelling is nog steeds niet binnen, kunnen jullie kijken?",
    "Is deze actie ook geldig in de winkel?",
    "Hoe lang duurt het retourneren ongeveer?",
    "Waarom werkt mijn kortingscode niet?",
    "Wanneer is dit weer op voorraad?",
    "Can you ship to Belgium as well?",
    "Ik heb twee keer betaald, wat nu?",
    "Top service vandaag, dank jullie wel!",
]
REPLIES = [
    "Hoi! Stuur ons even een DM met je ordernummer, dan kijken we meteen mee.",
    "Goede vraag! Ja, de actie geldt ook in alle winkels.",
    "Retourneren duurt meestal 3 tot 5 werkdagen.",
    "Vervelend! We sturen je een nieuwe code via DM.",
    "Thanks for asking: yes, we ship to Belgium.",
]
PAGE_POSTS = [
    "Nieuw in de collectie: onze winterjassen!",
    "Vrijdag = deal-dag. Wat ga jij scoren?",
    "We zijn deze week extra lang bereikbaar via Facebook.",
]


@dataclass(frozen=True, kw_only=True)
class ScenarioStats:
    """What a history script created, for logs and tests."""

    posts: int
    comments: int
    replies: int


def _arrivals_per_hour(local: datetime) -> float:
    """Consumer traffic: quiet nights, busy evenings, busier weekends."""
    hour = local.hour
    if hour < 7:
        rate = 0.3
    elif hour < 17:
        rate = 1.2
    elif hour < 23:
        rate = 3.0
    else:
        rate = 1.0
    return rate * (1.6 if local.weekday() >= 5 else 1.0)


def _reply_delay(local: datetime, rng: random.Random) -> float | None:
    """Minutes until a student answers, or None when nobody ever does."""
    roll = rng.random()
    if roll < 0.04:
        return None
    if local.hour < 7:
        # Nobody on duty at night: the first shift picks it up after 07:00.
        return (7 - local.hour) * 60 - local.minute + rng.uniform(5, 40)
    if roll < 0.14:
        return rng.uniform(70, 240)  # late
    return rng.lognormvariate(math.log(14), 0.6)


def _poisson(rate: float, rng: random.Random) -> int:
    threshold, count, product = math.exp(-rate), 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def seed_history(
    api: FakeGraphApi, *, now: datetime, days: int = 7, tz: str = "Europe/Amsterdam", seed: int = 7
) -> ScenarioStats:
    """Fill the fake page with `days` of realistic history ending at `now`."""
    rng = random.Random(seed)
    zone = ZoneInfo(tz)
    start = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    posts: list[tuple[datetime, str]] = []
    n_comments = n_replies = 0
    hour = start
    while hour < now:
        local = hour.astimezone(zone)
        if local.hour in (10, 19) or not posts:
            at = hour + timedelta(minutes=rng.randint(0, 20))
            if at < now:
                posts.append((at, api.add_post(created_time=at, message=rng.choice(PAGE_POSTS))))
        for _ in range(_poisson(_arrivals_per_hour(local), rng)):
            at = hour + timedelta(seconds=rng.randint(0, 3599))
            if at >= now:
                continue
            consumer = rng.choice(CONSUMERS)
            if rng.random() < 0.12:
                thread = api.add_post(
                    created_time=at, message=rng.choice(QUESTIONS), author=consumer
                )
                comment = thread
            else:
                thread = next((pid for t, pid in reversed(posts) if t <= at), posts[0][1])
                comment = api.add_comment(
                    post_id=thread, created_time=at, message=rng.choice(QUESTIONS), author=consumer
                )
            n_comments += 1
            if rng.random() < 0.02:
                api.hide(comment)
                continue
            delay = _reply_delay(at.astimezone(zone), rng)
            if delay is None or at + timedelta(minutes=delay) >= now:
                continue
            direct = rng.random() < 0.6 and comment != thread
            api.add_comment(
                post_id=thread,
                created_time=at + timedelta(minutes=delay),
                message=rng.choice(REPLIES),
                parent_id=comment if direct else None,
            )
            n_replies += 1
        hour += timedelta(hours=1)
    return ScenarioStats(posts=len(posts), comments=n_comments, replies=n_replies)


async def live_traffic(
    api: FakeGraphApi,
    clock: Clock,
    *,
    every: tuple[float, float] = (3.0, 8.0),
    answer_within: tuple[float, float] = (10.0, 90.0),
    answer_share: float = 0.85,
    seed: int = 11,
) -> None:
    """Keep adding consumer comments and, a little later, student replies, until cancelled."""
    rng = random.Random(seed)
    pending: list[asyncio.Task[None]] = []

    async def reply_later(post_id: str, comment_id: str, delay: float) -> None:
        await clock.sleep(delay)
        direct = rng.random() < 0.6 and comment_id != post_id
        api.add_comment(
            post_id=post_id,
            created_time=clock.now(),
            message=rng.choice(REPLIES),
            parent_id=comment_id if direct else None,
        )

    post_id = api.add_post(created_time=clock.now(), message=rng.choice(PAGE_POSTS))
    try:
        while True:
            await clock.sleep(rng.uniform(*every))
            consumer = rng.choice(CONSUMERS)
            if rng.random() < 0.15:
                thread = api.add_post(
                    created_time=clock.now(), message=rng.choice(QUESTIONS), author=consumer
                )
                comment = thread
            else:
                thread = post_id
                comment = api.add_comment(
                    post_id=thread,
                    created_time=clock.now(),
                    message=rng.choice(QUESTIONS),
                    author=consumer,
                )
            if rng.random() < answer_share:
                delay = rng.uniform(*answer_within)
                pending.append(asyncio.create_task(reply_later(thread, comment, delay)))
            pending = [t for t in pending if not t.done()]
    finally:
        for task in pending:
            task.cancel()
