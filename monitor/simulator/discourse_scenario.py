"""Scenario scripts for the fake Discourse forum: a week of history, then live traffic."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.clock import Clock
from monitor.simulator.discourse import FakeDiscourse
from monitor.simulator.scenario import (
    CONSUMERS,
    QUESTIONS,
    REPLIES,
    _arrivals_per_hour,
    _poisson,
    _reply_delay,
)

# Usernames of the consumers of the Facebook scenario, as a forum would spell them.
FORUM_CONSUMERS = [name.lower().replace(" ", "_") for _, name in CONSUMERS]
# The brand's webcare students answer from the "webcare" group; the admin is staff.
WEBCARE = ("anouk_webcare", "joost_webcare", "fatima_webcare")
ADMIN = "acme_admin"
WEBCARE_GROUP = "webcare"
TITLES = [
    "Bestelling nog niet ontvangen",
    "Kortingscode werkt niet",
    "Retour aanmelden lukt niet",
    "Vraag over levertijd",
    "Dubbel betaald",
    "Shipping to Belgium?",
    "Wanneer weer op voorraad?",
    "Account geblokkeerd",
]
WHISPERS = [
    "@collega kun jij deze oppakken? Ik zit in een gesprek.",
    "Order gecheckt in het systeem: pakket ligt bij de vervoerder.",
]
# Forums are quieter than the Facebook page: this share of its arrivals. It also keeps a
# week's topics (one request each on the first poll) within one minute's admin API budget,
# so the demo shows the forum at once.
FORUM_SHARE = 0.3


@dataclass(frozen=True, kw_only=True)
class ForumStats:
    """What a forum history script created, for logs and tests."""

    topics: int
    posts: int
    replies: int


def add_people(forum: FakeDiscourse) -> None:
    """The demo forum's consumers, webcare students and admin."""
    for username in FORUM_CONSUMERS:
        forum.add_user(username)
    for username in WEBCARE:
        forum.add_user(username, group=WEBCARE_GROUP)
    forum.add_user(ADMIN, admin=True)


@dataclass
class _Ref:
    """A topic or post id that exists once its planned event has been applied."""

    id: int = 0


def seed_forum(
    forum: FakeDiscourse,
    *,
    now: datetime,
    days: int = 7,
    tz: str = "Europe/Amsterdam",
    seed: int = 17,
) -> ForumStats:
    """Fill the fake forum with `days` of realistic history ending at `now`."""
    # Consumers open topics or add to recent ones; a webcare student answers most of them
    # (directly or to the topic), sometimes after a whisper to a colleague, and answered topics
    # are sometimes closed (a small action). A few spam posts are hidden. Events are planned
    # first and applied in time order, so post numbers follow creation times as on Discourse.
    rng = random.Random(seed)
    zone = ZoneInfo(tz)
    add_people(forum)
    categories = (
        forum.add_category("support", "Klantenservice"),
        forum.add_category("bestellingen", "Bestellingen"),
    )
    forum.add_topic(
        title="Welkom op het Acme forum",
        author=ADMIN,
        created_at=now - timedelta(days=days + 30),
        text="Lees dit eerst: zo werkt ons forum.",
        pinned=True,
    )
    plan: list[tuple[datetime, int, Callable[[], None]]] = []

    def schedule(at: datetime, action: Callable[[], None]) -> None:
        plan.append((at, len(plan), action))

    def open_topic(at: datetime, author: str, topic: _Ref, post: _Ref) -> None:
        title, text, category = rng.choice(TITLES), rng.choice(QUESTIONS), rng.choice(categories)

        def apply() -> None:
            topic.id = forum.add_topic(
                title=title, author=author, created_at=at, text=text, category_id=category
            )
            post.id = forum.post_id(topic.id, 1)

        schedule(at, apply)

    def add_post(
        at: datetime, author: str, topic: _Ref, post: _Ref, text: str, to: _Ref | None = None
    ) -> None:
        def apply() -> None:
            reply_to = forum.post_number(to.id) if to is not None else None
            post.id = forum.add_post(
                topic.id, author=author, created_at=at, text=text, reply_to=reply_to
            )

        schedule(at, apply)

    def whisper(at: datetime, author: str, topic: _Ref) -> None:
        note = rng.choice(WHISPERS)

        def apply() -> None:
            forum.whisper(topic.id, author=author, created_at=at, text=note)

        schedule(at, apply)

    def hide(at: datetime, post: _Ref) -> None:
        schedule(at, lambda: forum.hide(post.id))

    def close(at: datetime, author: str, topic: _Ref) -> None:
        def apply() -> None:
            forum.small_action(topic.id, author=author, created_at=at)

        schedule(at, apply)

    topics: list[tuple[datetime, _Ref]] = []
    n_posts = n_replies = 0
    hour = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    while hour < now:
        local = hour.astimezone(zone)
        for _ in range(_poisson(_arrivals_per_hour(local) * FORUM_SHARE, rng)):
            at = hour + timedelta(seconds=rng.randint(0, 3599))
            if at >= now:
                continue
            consumer = rng.choice(FORUM_CONSUMERS)
            recent = [ref for t, ref in topics if at - timedelta(days=2) <= t < at]
            topic, post = _Ref(), _Ref()
            if not recent or rng.random() < 0.35:
                topics.append((at, topic))
                open_topic(at, consumer, topic, post)
            else:
                topic = rng.choice(recent)
                add_post(at, consumer, topic, post, rng.choice(QUESTIONS))
            n_posts += 1
            if rng.random() < 0.02:
                hide(at, post)
                continue
            delay = _reply_delay(at.astimezone(zone), rng)
            if delay is None or at + timedelta(minutes=delay) >= now:
                continue
            student = rng.choice(WEBCARE)
            answer_at = at + timedelta(minutes=delay)
            if rng.random() < 0.15:
                whisper(at + timedelta(minutes=delay / 2), student, topic)
            direct = rng.random() < 0.6
            add_post(
                answer_at, student, topic, _Ref(), rng.choice(REPLIES), post if direct else None
            )
            n_replies += 1
            if rng.random() < 0.1:
                close(answer_at + timedelta(minutes=1), student, topic)
        hour += timedelta(hours=1)
    for _at, _order, action in sorted(plan, key=lambda event: (event[0], event[1])):
        action()
    return ForumStats(topics=len(topics), posts=n_posts, replies=n_replies)


async def forum_live_traffic(
    forum: FakeDiscourse,
    clock: Clock,
    *,
    every: tuple[float, float] = (6.0, 15.0),
    answer_within: tuple[float, float] = (10.0, 90.0),
    answer_share: float = 0.85,
    seed: int = 23,
) -> None:
    """Keep adding consumer posts and, a little later, webcare replies, until cancelled."""
    rng = random.Random(seed)
    pending: list[asyncio.Task[None]] = []

    async def reply_later(topic: int, post: int, delay: float) -> None:
        await clock.sleep(delay)
        direct = rng.random() < 0.6
        forum.add_post(
            topic,
            author=rng.choice(WEBCARE),
            created_at=clock.now(),
            text=rng.choice(REPLIES),
            reply_to=forum.post_number(post) if direct else None,
        )

    live_topic = forum.add_topic(
        title="Live: vragen over de winteractie",
        author=rng.choice(FORUM_CONSUMERS),
        created_at=clock.now(),
        text=rng.choice(QUESTIONS),
    )
    try:
        while True:
            await clock.sleep(rng.uniform(*every))
            consumer = rng.choice(FORUM_CONSUMERS)
            if rng.random() < 0.3:
                topic = forum.add_topic(
                    title=rng.choice(TITLES),
                    author=consumer,
                    created_at=clock.now(),
                    text=rng.choice(QUESTIONS),
                )
                post = forum.post_id(topic, 1)
            else:
                topic = live_topic
                post = forum.add_post(
                    topic, author=consumer, created_at=clock.now(), text=rng.choice(QUESTIONS)
                )
            if rng.random() < answer_share:
                delay = rng.uniform(*answer_within)
                pending.append(asyncio.create_task(reply_later(topic, post, delay)))
            pending = [t for t in pending if not t.done()]
    finally:
        for task in pending:
            task.cancel()
