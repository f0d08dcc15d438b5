"""The demo's hashtag campaign on Mastodon: a week of #acmejobs shaped like the known case.

A brand runs a weekly job-market hashtag. Partner agencies post vacancies into it, people cheer
and share, the brand posts its announcements, and only three posts in the whole week ask the
brand something. Nobody answers them. `report --campaign acmejobs` over that week shows exactly
this (docs/campaigns.md): 639 posts, 96 vacancies, 14 of the brand's own, 3 interactions, none
followed up. Boosts of vacancies run through the same timelines and are not posts of their own.

Besides the hashtag, a few consumers mention the brand's account directly; the brand answers
those within minutes, so the usual SLA figures have something to show. The week is the seven
days before today in the brand's time zone; live traffic (today) follows it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.clock import Clock
from monitor.simulator.mastodon import FakeMastodon

HASHTAG = "acmejobs"
BRAND_ACCOUNT = "acme"
ZONE = ZoneInfo("Europe/Amsterdam")
# Temp agencies on servers of their own: their posts in the hashtag are broadcasts.
PARTNERS = (
    "flexwerk@jobs.example",
    "uitzendplus@jobs.example",
    "jobhub@work.example",
    "staffnow@work.example",
)
DAYS = 7
BRAND_POSTS = 14  # two a day
VACANCIES = 96
BOOSTS = 57  # of vacancies: not posts of their own
INTERACTIONS = 3
POSTS = 639
CHATTER = POSTS - BRAND_POSTS - VACANCIES - INTERACTIONS
PEOPLE = 180  # the chatter's authors are drawn from these
MENTIONS = 5  # consumers who @-mention the brand outside the hashtag; all answered

JOBS = ("order picker", "driver", "customer service agent", "warehouse lead", "web editor")
CITIES = ("Tilburg", "Utrecht", "Eindhoven", "Breda", "Zwolle")
CHEERS = (
    "Good luck to everyone applying this week #acmejobs",
    "Sharing for my cousin, she is looking for work #acmejobs",
    "Great initiative from Acme #acmejobs",
    "Monday means #acmejobs again",
    "Applied for two of these, fingers crossed #acmejobs",
    "Nice to see so many jobs in the south #acmejobs",
    "#acmejobs keeps getting bigger",
)
QUESTIONS = (
    "@acme is the order picker job in Tilburg still open? #acmejobs",
    "Do you also hire students for weekends only? #acmejobs",
    "#acmejobs how do I apply without a CV?",
)
ASKS = (
    "@acme my parcel has not moved for three days, can you check?",
    "@acme can I still return the blue jacket after 30 days?",
    "@acme is the Breda store open on Sunday?",
    "@acme where do I find my invoice?",
    "@acme does the webshop ship to Belgium?",
)
ANSWERS = ("Hi! We'll check and DM you.", "Yes, you can.", "Thanks, we're on it.")


@dataclass(frozen=True, kw_only=True)
class CampaignStats:
    """What the seeded week holds: what the campaign report over it must show."""

    first_day: date  # the week's first and last day, in the brand's time zone
    last_day: date
    posts: int
    authors: int
    brand_posts: int
    broadcasts: int
    chatter: int
    interactions: int
    answered: int
    boosts: int
    mentions: int  # outside the hashtag, all answered


def _moment(day: date, rng: random.Random) -> datetime:
    """A daytime moment of a local day (08:00-22:00), so none falls into the next day."""
    start = datetime.combine(day, time(8), ZONE)
    return start + timedelta(seconds=rng.uniform(0, 14 * 3600))


def seed_campaign(api: FakeMastodon, *, now: datetime, seed: int = 47) -> CampaignStats:
    """The brand, its partners and people, and a week of #acmejobs before today."""
    rng = random.Random(seed)
    today = now.astimezone(ZONE).date()
    days = [today - timedelta(days=DAYS - n) for n in range(DAYS)]
    for partner in PARTNERS:
        api.add_account(partner)
    authors = {BRAND_ACCOUNT}
    for n in range(BRAND_POSTS):
        text = f"This week on #{HASHTAG}: {rng.randint(20, 60)} new jobs near you"
        api.post(BRAND_ACCOUNT, text, at=_moment(days[n % DAYS], rng))
    vacancies: list[str] = []
    for n in range(VACANCIES):
        partner = PARTNERS[n % len(PARTNERS)]
        authors.add(partner)
        text = f"Vacancy: {rng.choice(JOBS)} in {rng.choice(CITIES)}, apply now #{HASHTAG}"
        vacancies.append(api.post(partner, text, at=_moment(rng.choice(days), rng)))
    for n in range(BOOSTS):
        person = f"person{rng.randrange(PEOPLE)}"
        api.boost(person, vacancies[n], at=now - timedelta(days=rng.uniform(0.1, 0.9)))
    for _ in range(CHATTER):
        person = f"person{rng.randrange(PEOPLE)}"
        authors.add(person)
        api.post(person, rng.choice(CHEERS), at=_moment(rng.choice(days), rng))
    for n, question in enumerate(QUESTIONS):
        person = f"asker{n}"
        authors.add(person)
        api.post(person, question, at=_moment(days[2 + n], rng))
    for n, ask in enumerate(ASKS):
        at = _moment(days[n + 1], rng)
        asked = api.post(f"customer{n}", ask, at=at)
        answer_at = at + timedelta(minutes=rng.uniform(3, 20))
        api.post(BRAND_ACCOUNT, rng.choice(ANSWERS), at=answer_at, reply_to=asked)
    return CampaignStats(
        first_day=days[0],
        last_day=days[-1],
        posts=POSTS,
        authors=len(authors),
        brand_posts=BRAND_POSTS,
        broadcasts=VACANCIES,
        chatter=CHATTER,
        interactions=INTERACTIONS,
        answered=0,
        boosts=BOOSTS,
        mentions=MENTIONS,
    )


async def campaign_live_traffic(api: FakeMastodon, clock: Clock, seed: int = 48) -> None:
    """Today's #acmejobs: cheers every 10-30 s and, in between, a question for the brand every
    15-30 s (the first after 3 s: a new user sees one at once, and a Prometheus that scrapes
    from the start sees the detection counter rise with the second) that the brand mostly
    answers within minutes."""
    rng = random.Random(seed)
    asking = asyncio.create_task(_questions(api, clock, random.Random(seed + 1)))
    try:
        while True:
            await asyncio.sleep(rng.uniform(10, 30))
            api.post(f"person{rng.randrange(PEOPLE)}", rng.choice(CHEERS), at=clock.now())
    finally:
        asking.cancel()


async def _questions(api: FakeMastodon, clock: Clock, rng: random.Random) -> None:
    """Live questions (in the hashtag, or @-mentions); 70% answered after 1-6 minutes."""
    await asyncio.sleep(3)
    while True:
        person = f"person{rng.randrange(PEOPLE)}"
        asked = api.post(person, rng.choice(QUESTIONS + ASKS), at=clock.now())
        if rng.random() < 0.7:
            answer = rng.choice(ANSWERS)
            asyncio.get_running_loop().call_later(
                rng.uniform(60, 360), _answer, api, clock, answer, asked
            )
        await asyncio.sleep(rng.uniform(15, 30))


def _answer(api: FakeMastodon, clock: Clock, text: str, asked: str) -> None:
    """The brand's reply to a live question."""
    api.post(BRAND_ACCOUNT, text, at=clock.now(), reply_to=asked)
