"""The campaign report (issue 21) on SQLite and PostgreSQL: a hashtag's posts stored the way a
Mastodon source stores them (the interaction rule's verdict, handle_batch), then counted by the
report's function and by `webcare-monitor report --campaign`.

The first scenario is the known case the issue starts from: 639 posts in a week, 96 of them a
partner's vacancies, 3 consumer interactions and none followed up.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from monitor.app import create_app, source_settings
from monitor.campaign import CampaignReport
from monitor.config import ApiToken, Config, MastodonConfig, load_config
from monitor.domain import Batch, Message
from monitor.pipeline import handle_batch
from monitor.sources.interaction import InteractionRule, Post, account_key
from monitor.store import Store, create_engine, upgrade
from monitor.store.campaigns import campaign_report
from monitor.store.reports import summary_report

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SINCE = datetime(2026, 11, 2, tzinfo=AMSTERDAM)  # a Monday
UNTIL = datetime(2026, 11, 9, tzinfo=AMSTERDAM)
AS_OF = datetime(2026, 11, 9, 10, 0, tzinfo=AMSTERDAM)
SERVER = "https://social.example"
PARTNERS = ("jobsnl", "werkplein", "uitzendburo")

CONFIG = """
database_url = "{database_url}"
[calendars.office]
timezone = "Europe/Amsterdam"
hours = ["mon-fri 09:00-17:00"]
[policies.default]
office_hours = "60m"
after_hours = "30m"
reply_match = "direct"
[[sources]]
type = "mastodon"
name = "acme-mastodon"
brand = "acme"
base_url = "{server}"
account = "acme"
hashtags = ["#JobMarket", "jobmarket2026", "Launch"]
moderators = ["anna_acme"]
partners = ["jobsnl", "werkplein", "uitzendburo"]
ignore_authors = ["spambot"]
[sources.interaction]
question_words = ["waar", "hoe"]
[[sources]]
type = "mastodon"
name = "beta-mastodon"
brand = "beta"
base_url = "{server}"
account = "beta"
hashtags = ["jobmarket", "job_market", "jobxmarket"]
"""


@dataclass
class Timeline:
    """Posts of one source, sorted by the source's interaction rule as its adapter would."""

    source: MastodonConfig
    messages: list[Message]

    @property
    def rule(self) -> InteractionRule:
        return InteractionRule(
            brand_accounts=[self.source.account, *self.source.moderators],
            partners=self.source.partners,
            hashtags=self.source.hashtags,
            config=self.source.interaction,
        )

    def post(
        self,
        author: str,
        text: str,
        at: datetime,
        *,
        reply_to: Message | None = None,
        deleted: bool = False,
    ) -> Message:
        """A status as the source normalises it; a reply joins its parent's thread."""
        number = len(self.messages) + 1
        status_id = f"{self.source.name}-{number}"
        tags = frozenset(tag.lower() for tag in re.findall(r"#(\w+)", text))
        rule = self.rule
        verdict = rule.classify(
            Post(
                author=author,
                text=text,
                tags=tags,
                mentions_brand=f"@{self.source.account}" in text.lower(),
                replies_to_brand=reply_to is not None
                and rule.is_brand_account(reply_to.author_name or ""),
            )
        )
        message = Message(
            platform_id=status_id,
            thread_id=reply_to.thread_id if reply_to is not None else status_id,
            parent_id=reply_to.platform_id if reply_to is not None else None,
            author_id=f"id-{account_key(author)}",
            author_name=author,
            text=text,
            created_at=at.astimezone(UTC),
            seq=number,
            is_brand=verdict.is_brand,
            deleted=deleted,
            permalink=f"{SERVER}/@{author}/{number}",
            kind=verdict.kind,
            tags=verdict.tags,
        )
        self.messages.append(message)
        return message


def write_config(tmp_path: Path, database_url: str) -> tuple[Path, Config]:
    path = tmp_path / "campaign.toml"
    path.write_text(CONFIG.format(database_url=database_url, server=SERVER), encoding="utf-8")
    return path, load_config(path)


def timeline(config: Config, name: str) -> Timeline:
    (source,) = [s for s in config.sources if s.name == name]
    assert isinstance(source, MastodonConfig)
    return Timeline(source=source, messages=[])


async def store_all(store: Store, config: Config, *timelines: Timeline) -> None:
    """Each timeline through the pipeline in one batch, as one poll of its source would."""
    settings = {s.ref.name: s for s in source_settings(config)}
    for line in timelines:
        batch = Batch(messages=tuple(line.messages), cursor={"since_id": len(line.messages)})
        await handle_batch(store, settings[line.source.name], batch, AS_OF.astimezone(UTC))


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Iterator[tuple[Path, Config]]:
    yield write_config(tmp_path, database_url)


@pytest.fixture
async def store(config_file: tuple[Path, Config]) -> AsyncIterator[Store]:
    engine = create_engine(config_file[1].database_url)
    await upgrade(engine)
    yield Store(engine)
    await engine.dispose()


def known_case(config: Config) -> tuple[Timeline, Timeline]:
    """The week of the known case on acme's account, beta's week on the same tag, and posts
    just outside the window or in other tags."""
    acme = timeline(config, "acme-mastodon")
    at = SINCE + timedelta(hours=8)
    step = timedelta(minutes=15)  # 639 posts take 6.7 days
    announcements = set(range(0, 636, 53))  # 12
    asked = {
        100: ("joost", "@acme is the job fair open to students? #JobMarket"),
        300: ("fatima", "How do I sign up for the CV workshop? #jobmarket"),
        500: ("pieter", "Waar kan ik me aanmelden voor de banenmarkt #JobMarket"),
    }
    vacancies = [n for n in range(1, 639, 6) if n not in announcements][:96]
    chatter = 0  # 528 posts by 150 visitors
    for n in range(639):
        moment = at + n * step
        if n in announcements:
            acme.post("acme", f"This week's job fair programme is online #JobMarket ({n})", moment)
        elif n in vacancies:  # a partner's, some worded as questions: broadcasts all the same
            hook = "Looking for work? " if n % 4 == 1 else ""
            text = f"{hook}Vacancy: welder in Utrecht #jobmarket #vacature"
            acme.post(PARTNERS[vacancies.index(n) % 3], text, moment)
        elif n in asked:
            acme.post(*asked[n], moment)
        else:
            chatter += 1
            text = f"Great turnout at #jobmarket today! ({n})"
            acme.post(f"visitor{chatter % 150}", text, moment)
    # Outside the window: half-open, [since, until).
    acme.post("visitor1", "Early bird #jobmarket", SINCE - timedelta(seconds=1))
    acme.post("visitor2", "Is it over? #jobmarket", UNTIL)
    # Inside it, but not the campaign: another watched tag, a longer one, and no tag at all.
    acme.post("visitor3", "When is the launch? #Launch", SINCE + timedelta(days=2))
    acme.post("visitor4", "Any news? #jobmarket2026", SINCE + timedelta(days=2))
    acme.post("visitor5", "@acme where is my parcel?", SINCE + timedelta(days=3))
    beta = timeline(config, "beta-mastodon")
    beta.post("beta", "Our stand at #jobmarket: hall 2", SINCE + timedelta(days=1))
    beta.post(
        "joost", "@beta are you hiring juniors? #jobmarket", SINCE + timedelta(days=1, hours=1)
    )
    for n in range(5):
        beta.post(f"visitor{n}", "Busy at #jobmarket", SINCE + timedelta(days=1, hours=2 + n))
    return acme, beta


KNOWN_CASE: dict[str, Any] = {
    "posts": 639,
    "authors": 1 + 3 + 3 + 150,  # the brand, the partners, the three who asked, the visitors
    "brand_posts": 12,
    "broadcasts": 96,
    "chatter": 528,
    "interactions": 3,
    "followed_up": 0,
    "answered_in_time": 0,
    "answered_late": 0,
    "waiting": 3,
    "breached": 3,
    "dismissed": 0,
    "not_tracked": 0,
    "compliance": 0.0,
    "median_response_seconds": None,
    "p90_response_seconds": None,
    "median_response_sla_seconds": None,
    "p90_response_sla_seconds": None,
}


def figures(report: CampaignReport) -> dict[str, object]:
    return report.to_json()["figures"]  # type: ignore[no-any-return]


async def test_the_known_case_three_interactions_none_followed_up(
    store: Store, config_file: tuple[Path, Config]
) -> None:
    config = config_file[1]
    acme, beta = known_case(config)
    await store_all(store, config, acme, beta)
    report = await campaign_report(
        store, tag="#JobMarket", since=SINCE, until=UNTIL, as_of=lambda: AS_OF, brand="acme"
    )
    assert report.tag == "jobmarket"
    assert figures(report) == KNOWN_CASE
    assert [(s.source, s.platform, s.posts) for s in report.sources] == [
        ("acme-mastodon", "mastodon", 639)
    ]
    asked = {
        m.platform_id: m for m in acme.messages if m.author_name in ("joost", "fatima", "pieter")
    }
    assert [w.permalink for w in report.waiting] == [m.permalink for m in asked.values()]
    assert all(w.state == "breached" for w in report.waiting)
    first = report.waiting[0]
    assert first.created_at == SINCE + timedelta(hours=8) + 100 * timedelta(minutes=15)
    assert first.waited_seconds == (AS_OF - first.created_at).total_seconds()


async def test_without_a_brand_every_source_with_the_tag_counts(
    store: Store, config_file: tuple[Path, Config]
) -> None:
    config = config_file[1]
    await store_all(store, config, *known_case(config))
    report = await campaign_report(
        store, tag="jobmarket", since=SINCE, until=UNTIL, as_of=lambda: AS_OF
    )
    got = figures(report)
    assert (got["posts"], got["brand_posts"], got["chatter"], got["interactions"]) == (
        639 + 7,
        12 + 1,
        528 + 5,
        3 + 1,
    )
    # joost and visitor0..4 post on both servers: two accounts each, one per source.
    assert got["authors"] == KNOWN_CASE["authors"] + 1 + 1 + 5
    assert [(s.source, s.posts, s.interactions) for s in report.sources] == [
        ("acme-mastodon", 639, 3),
        ("beta-mastodon", 7, 1),
    ]


async def test_a_narrower_window_leaves_the_rest_out(
    store: Store, config_file: tuple[Path, Config]
) -> None:
    config = config_file[1]
    await store_all(store, config, *known_case(config))
    # Post 100 (joost's question) is at 8 h + 25 h; 300 (fatima's) at 8 h + 75 h.
    since, until = SINCE + timedelta(hours=33), SINCE + timedelta(hours=83)
    report = await campaign_report(
        store, tag="JOBMARKET", since=since, until=until, as_of=lambda: AS_OF, brand="acme"
    )
    got = figures(report)
    assert got["posts"] == 200  # posts 100 to 299, one every quarter of an hour
    assert got["interactions"] == 1
    assert [w.permalink for w in report.waiting] == [f"{SERVER}/@joost/101"]


def the_launch(config: Config) -> Timeline:
    """A product launch: answers in time and late, one still waiting, one deleted, one ignored."""
    acme = timeline(config, "acme-mastodon")
    monday = datetime(2026, 11, 2, 9, 0, tzinfo=AMSTERDAM)
    launch = acme.post("acme", "Our new kettle is out today #Launch", monday)
    ships = acme.post(
        "ans", "Does it ship to Belgium? #launch", monday + timedelta(hours=1), reply_to=launch
    )
    acme.post(
        "acme", "@ans yes, from next week", monday + timedelta(hours=1, minutes=20), reply_to=ships
    )
    colour = acme.post("bram", "@acme which colours? #launch", monday + timedelta(hours=2))
    acme.post(
        "anna_acme", "@bram white and black #launch", monday + timedelta(hours=5), reply_to=colour
    )
    acme.post("chris", "@acme hoe lang garantie #launch", monday + timedelta(hours=3), deleted=True)
    acme.post("spambot", "@acme cheap followers #launch", monday + timedelta(hours=4))
    for n in range(5):
        acme.post(f"fan{n}", "Love the new kettle #launch", monday + timedelta(days=1, hours=n))
    for partner in PARTNERS[:2]:
        acme.post(partner, "Now in our shops: the kettle #launch", monday + timedelta(days=2))
    # Sunday evening, after hours (30 min target): still within its target at the as_of below.
    acme.post("dirk", "Is there a launch discount? #launch", UNTIL - timedelta(minutes=20))
    return acme


async def test_answers_in_time_and_late_and_the_report_s_own_sla_figures(
    store: Store, config_file: tuple[Path, Config]
) -> None:
    config = config_file[1]
    await store_all(store, config, the_launch(config))
    as_of = UNTIL - timedelta(minutes=10)
    report = await campaign_report(
        store, tag="launch", since=SINCE, until=UNTIL, as_of=lambda: as_of, brand="acme"
    )
    assert figures(report) == {
        "posts": 14,  # the reply without the tag is not a campaign post
        "authors": 14,  # acme, anna_acme, ans, bram, chris, spambot, 5 fans, 2 partners, dirk
        "brand_posts": 2,
        "broadcasts": 2,
        "chatter": 5,
        "interactions": 5,
        "followed_up": 2,
        "answered_in_time": 1,
        "answered_late": 1,
        "waiting": 1,
        "breached": 0,
        "dismissed": 1,
        "not_tracked": 1,
        "compliance": 0.5,
        "median_response_seconds": 1200.0,
        "p90_response_seconds": 10800.0,
        "median_response_sla_seconds": 1200.0,
        "p90_response_sla_seconds": 10800.0,
    }
    (waiting,) = report.waiting
    assert (waiting.permalink, waiting.state, waiting.waited_seconds) == (
        f"{SERVER}/@dirk/{len(the_launch(config).messages)}",
        "open",
        600.0,
    )
    # The same figures as the report's own row: every item of the window is the campaign's.
    summary = await summary_report(
        store, since=SINCE, until=UNTIL, as_of=lambda: as_of, brand="acme"
    )
    (row,) = [r for r in summary.rows if r.source == "acme-mastodon" and r.period == "all"]
    got = figures(report)
    assert row.compliance == got["compliance"]
    assert row.median_response_seconds == got["median_response_seconds"]
    assert row.p90_response_sla_seconds == got["p90_response_sla_seconds"]
    assert (row.answered_in_time, row.answered_late, row.dismissed, row.pending) == (1, 1, 1, 1)


def run_report(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "report", "-c", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_command_line_shows_the_same_table(
    store: Store, config_file: tuple[Path, Config]
) -> None:
    path, config = config_file
    await store_all(store, config, *known_case(config))
    window = ("--since", "2026-11-02", "--until", "2026-11-09", "--brand", "acme")
    result = run_report(path, "--campaign", "#JobMarket", *window, "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["campaign"] == "jobmarket"
    assert document["since"] == "2026-11-01T23:00:00+00:00"
    # Judged now (the real clock, long after the week): the same figures as on 9 November.
    assert document["figures"] == KNOWN_CASE
    assert [w["author"] for w in document["waiting"]] == ["joost", "fatima", "pieter"]

    table = run_report(path, "--campaign", "jobmarket", *window)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == (
        "Campaign #jobmarket: posts created 2026-11-02 00:00 +01:00 to 2026-11-09 00:00 +01:00,"
        " brand acme"
    )
    assert (
        "#jobmarket: 639 posts, 96 partner broadcasts, 3 interactions, 0 followed up,"
        " 3 waiting (3 past due)."
    ) in lines
    assert "Waiting for an answer (3), oldest first:" in lines
    assert f"{SERVER}/@joost/101" in table.stdout
    assert "2026-11-03 09:00 +01:00" in table.stdout  # joost asked at 08:00 UTC

    csv_out = run_report(path, "--campaign", "jobmarket", *window, "--format", "csv")
    header, row = csv_out.stdout.splitlines()
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert (values["posts"], values["interactions"], values["followed_up"]) == ("639", "3", "0")

    items = run_report(path, "--campaign", "jobmarket", *window, "--items", "--format", "json")
    assert [r["author"] for r in json.loads(items.stdout)["rows"]] == ["joost", "fatima", "pieter"]


def test_a_tag_that_is_not_one_hashtag_is_refused(config_file: tuple[Path, Config]) -> None:
    result = run_report(config_file[0], "--campaign", "#", "--last", "7d")
    assert result.returncode == 2
    assert "invalid campaign tag '#'" in result.stderr


async def test_an_underscore_in_the_tag_is_no_wildcard(
    store: Store, config_file: tuple[Path, Config]
) -> None:
    config = config_file[1]
    beta = timeline(config, "beta-mastodon")
    beta.post("visitor1", "Off to the #job_market", SINCE + timedelta(days=1))
    beta.post("visitor2", "Off to the #jobxmarket", SINCE + timedelta(days=1))
    await store_all(store, config, beta)
    report = await campaign_report(
        store, tag="#Job_Market", since=SINCE, until=UNTIL, as_of=lambda: AS_OF
    )
    assert (report.tag, figures(report)["posts"]) == ("job_market", 1)


async def test_the_api_answers_each_token_for_its_brands(
    store: Store, config_file: tuple[Path, Config], aiohttp_client: Any
) -> None:
    """GET /api/v1/campaign: the CLI's JSON; a token of one brand reads that brand only, one
    of several names the brand, and a brand not its own is refused."""
    config = config_file[1]
    await store_all(store, config, *known_case(config))
    tokens = [
        ApiToken(token=SecretStr("t-all")),
        ApiToken(token=SecretStr("t-acme"), brands=["acme"]),
        ApiToken(token=SecretStr("t-both"), brands=["acme", "beta"]),
    ]
    config = config.model_copy(
        update={"http": config.http.model_copy(update={"api_tokens": tokens})}
    )
    client = await aiohttp_client(create_app(config, start_polling=False))
    window = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}

    async def get(token: str, **query: str) -> tuple[int, dict[str, Any]]:
        response = await client.get(
            "/api/v1/campaign",
            params={"tag": "#JobMarket", **window, **query},
            headers={"Authorization": f"Bearer {token}"},
        )
        return response.status, await response.json()

    status, everything = await get("t-all")
    assert status == 200
    assert [s["source"] for s in everything["sources"]] == ["acme-mastodon", "beta-mastodon"]
    status, acme = await get("t-acme")
    assert status == 200 and acme["brand"] == "acme"
    assert [s["source"] for s in acme["sources"]] == ["acme-mastodon"]
    assert acme["figures"]["posts"] == 639 and acme["figures"]["followed_up"] == 0
    status, refused = await get("t-both")
    assert status == 400 and "brand=" in refused["error"]
    assert (await get("t-both", brand="beta"))[1]["sources"][0]["source"] == "beta-mastodon"
    assert (await get("t-acme", brand="beta"))[0] == 403
    assert (await get("t-all", tag="two words"))[0] == 400
