"""`webcare-monitor demo`: fake platforms on loopback and the real service pointed at them."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from monitor.clock import SystemClock
from monitor.config import Config, load_config
from monitor.simulator.campaign_scenario import (
    BRAND_ACCOUNT,
    HASHTAG,
    PARTNERS,
    CampaignStats,
    campaign_live_traffic,
    seed_campaign,
)
from monitor.simulator.discourse import FakeDiscourse
from monitor.simulator.discourse_scenario import WEBCARE_GROUP, forum_live_traffic, seed_forum
from monitor.simulator.graph_api import FakeGraphApi
from monitor.simulator.instagram_scenario import (
    IG_USER_ID,
    IG_USERNAME,
    instagram_live_traffic,
    seed_instagram,
)
from monitor.simulator.mastodon import FakeMastodon
from monitor.simulator.messenger_scenario import messenger_live_traffic, seed_messenger
from monitor.simulator.scenario import live_traffic, seed_history

PAGE_ID = "104729384756123"
PAGE_NAME = "Acme Webshop"
TOKEN = "demo-page-token-not-secret"
FORUM_API_KEY = "demo-forum-api-key-not-secret"
MASTODON_TOKEN = "demo-mastodon-token-not-secret"
# The demo's API token: opens the queue page and /api/v1/* (printed in the banner's links).
API_TOKEN = "demo-queue-token"

CONFIG_TEMPLATE = """\
# Written by `webcare-monitor demo`: the service reads it exactly as `run -c` would.
database_url = "sqlite+aiosqlite:///{db}"

[http]
host = "127.0.0.1"
port = {port}
# The queue page and /api/v1/* need a token; this one sees every brand.
[[http.api_tokens]]
token = "{api_token}"
name = "demo-student"

[calendars.office]
timezone = "Europe/Amsterdam"
hours = ["mon-fri 09:00-17:00"]

[policies.default]
office_hours = "60m"
after_hours = "30m"
# An early warning (10% of the target) so the demo's console shows alerts within minutes.
warn_at = 0.1
reply_match = "thread"

# Who is on duty; the console receiver prints every alert with their name.
[roster]
timezone = "Europe/Amsterdam"
lead = "lead-lisa"
[[roster.shifts]]
when = "mon-fri 09:00-17:00"
student = "office-team"
[[roster.shifts]]
when = "mon-fri 17:00-09:00"
student = "student-sam"
backup = "student-noor"
[[roster.shifts]]
when = "sat,sun 09:00-24:00"
student = "student-noor"
backup = "student-sam"
[[roster.shifts]]
when = "sun,mon 00:00-09:00"
student = "student-noor"
backup = "student-sam"

[[receivers]]
name = "console"
type = "console"

[[sources]]
type = "facebook_page"
name = "acme-facebook"
brand = "acme"
page_id = "{page_id}"
access_token_file = "page-token.txt"
api_base_url = "{api}"
policy = "default"
calendar = "office"
poll_interval = "5s"
backfill_days = 8
"""

FORUM_TEMPLATE = """
[[sources]]
type = "discourse"
name = "acme-forum"
brand = "acme"
base_url = "{forum}"
api_key_file = "forum-api-key.txt"
api_username = "system"
# The webcare students' primary group, and any staff member, answer for the brand.
moderators = ["group:{group}", "group:staff"]
policy = "default"
calendar = "office"
poll_interval = "10s"
backfill_days = 8
"""

# The Page's private conversations, from the same fake Graph API and token.
MESSENGER_TEMPLATE = """
[[sources]]
type = "messenger"
name = "acme-messenger"
brand = "acme"
page_id = "{page_id}"
access_token_file = "page-token.txt"
api_base_url = "{api}"
policy = "default"
calendar = "office"
poll_interval = "5s"
backfill_days = 8
"""

# The brand's Instagram professional account, from the same fake Graph API and token.
INSTAGRAM_TEMPLATE = """
[[sources]]
type = "instagram"
name = "acme-instagram"
brand = "acme"
ig_user_id = "{ig_user_id}"
username = "{username}"
access_token_file = "page-token.txt"
api_base_url = "{api}"
policy = "default"
calendar = "office"
poll_interval = "5s"
backfill_days = 8
"""


# The brand's Mastodon account and the campaign hashtag it watches, on a fake Mastodon server.
MASTODON_TEMPLATE = """
[[sources]]
type = "mastodon"
name = "acme-mastodon"
brand = "acme"
base_url = "{mastodon}"
account = "{account}"
access_token_file = "mastodon-token.txt"
hashtags = ["{hashtag}"]
# Temp agencies whose vacancies in the hashtag are broadcasts, not questions for the brand.
partners = [{partners}]
policy = "default"
calendar = "office"
poll_interval = "5s"
backfill_days = 8
"""


def write_demo_config(
    workdir: Path,
    *,
    api_base_url: str,
    port: int,
    forum_url: str | None = None,
    mastodon_url: str | None = None,
) -> Path:
    """Write the demo's config (and its secret files) into `workdir`; the page is source 1."""
    # The forum follows the page as a second source when `forum_url` is given.
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "page-token.txt").write_text(TOKEN + "\n", encoding="utf-8")
    text = CONFIG_TEMPLATE.format(
        db=(workdir / "webcare-monitor.db").as_posix(),
        port=port,
        page_id=PAGE_ID,
        api=api_base_url,
        api_token=API_TOKEN,
    )
    if forum_url is not None:
        (workdir / "forum-api-key.txt").write_text(FORUM_API_KEY + "\n", encoding="utf-8")
        text += FORUM_TEMPLATE.format(forum=forum_url, group=WEBCARE_GROUP)
    text += MESSENGER_TEMPLATE.format(page_id=PAGE_ID, api=api_base_url)
    text += INSTAGRAM_TEMPLATE.format(ig_user_id=IG_USER_ID, username=IG_USERNAME, api=api_base_url)
    if mastodon_url is not None:
        (workdir / "mastodon-token.txt").write_text(MASTODON_TOKEN + "\n", encoding="utf-8")
        text += MASTODON_TEMPLATE.format(
            mastodon=mastodon_url,
            account=BRAND_ACCOUNT,
            hashtag=HASHTAG,
            partners=", ".join(f'"{p}"' for p in PARTNERS),
        )
    path = workdir / "webcare-monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _command_name() -> str:
    """How the user started us, so a printed command works when pasted."""
    # The venv's script is not on PATH after the README's install.
    argv0 = sys.argv[0]
    if Path(argv0).name == "webcare-monitor":
        return shlex.quote(argv0)
    return f"{shlex.quote(sys.executable)} -m monitor"


def campaign_command(config: Path, campaign: CampaignStats) -> str:
    """The campaign report over the seeded week, as the banner prints it."""
    return (
        f"{_command_name()} report -c {config} --campaign {HASHTAG}"
        # --until is exclusive: the day after the week's last.
        f" --since {campaign.first_day} --until {campaign.last_day + timedelta(days=1)}"
    )


def _banner(
    port: int, config: Path, api: str, forum: str, mastodon: str, campaign: CampaignStats
) -> str:
    base = f"http://127.0.0.1:{port}"
    today = campaign.last_day + timedelta(days=1)
    query = f"since={today - timedelta(days=8)}&until={today + timedelta(days=1)}"
    return (
        "\nwebcare-monitor demo is running (Ctrl-C to stop)\n"
        f"  queue page   {base}/?token={API_TOKEN}\n"
        f"  report API   curl -H 'Authorization: Bearer {API_TOKEN}'"
        f" '{base}/api/v1/report?{query}'\n"
        f"  metrics      {base}/metrics\n"
        f"  health       {base}/healthz   {base}/readyz\n"
        f"  fake Facebook Graph API  {api}\n"
        f"  fake Discourse forum     {forum}   (try {forum}/latest.json)\n"
        f"  fake Mastodon server     {mastodon}   (try {mastodon}/api/v1/timelines/tag/{HASHTAG})\n"
        f"  config       {config}\n"
        # Today and the seeded week before it, in the brand's local days.
        f"  report       {_command_name()} report -c {config} --last 8d\n"
        f"  campaign     {campaign_command(config, campaign)}\n"
    )


async def _demo_app(
    port: int, workdir: Path, configure: Callable[[Config], None]
) -> web.Application:
    """Start the fake page with history and live traffic, then build the real service on it."""
    from monitor.app import create_app

    clock = SystemClock()
    api = FakeGraphApi(page_id=PAGE_ID, page_name=PAGE_NAME, access_token=TOKEN)
    stats = seed_history(api, now=clock.now())
    messenger_stats = seed_messenger(api, now=clock.now())
    instagram_stats = seed_instagram(api, now=clock.now())
    # A public forum: visitors can read /latest.json in a browser, the service uses its key.
    forum = FakeDiscourse(
        api_key=FORUM_API_KEY, clock=clock, title="Acme Community", login_required=False
    )
    forum_stats = seed_forum(forum, now=clock.now())
    mastodon = FakeMastodon(owner=BRAND_ACCOUNT, access_token=MASTODON_TOKEN, clock=clock)
    campaign = seed_campaign(mastodon, now=clock.now())
    await api.start()
    await forum.start()
    await mastodon.start()
    config_path = write_demo_config(
        workdir,
        api_base_url=api.base_url,
        port=port,
        forum_url=forum.base_url,
        mastodon_url=mastodon.base_url,
    )
    config = load_config(config_path)
    configure(config)
    app = create_app(config)

    async def platform(app: web.Application) -> AsyncIterator[None]:
        traffic = [
            asyncio.create_task(live_traffic(api, clock)),
            asyncio.create_task(forum_live_traffic(forum, clock)),
            asyncio.create_task(messenger_live_traffic(api, clock)),
            asyncio.create_task(instagram_live_traffic(api, clock, instagram_stats.media)),
            asyncio.create_task(campaign_live_traffic(mastodon, clock)),
        ]
        banner = _banner(
            port, config_path, api.base_url, forum.base_url, mastodon.base_url, campaign
        )
        print(banner, file=sys.stderr, flush=True)
        print(
            f"  history: {stats.posts} page posts, {stats.comments} consumer messages, "
            f"{stats.replies} replies over 7 days\n"
            f"  forum:   {forum_stats.topics} topics, {forum_stats.posts} consumer posts, "
            f"{forum_stats.replies} webcare replies over 7 days\n"
            f"  messenger: {messenger_stats.conversations} conversations,"
            f" {messenger_stats.answered} answered over 6 days\n"
            f"  instagram: {len(instagram_stats.media)} media, {instagram_stats.comments}"
            f" consumer comments, {instagram_stats.answered} answered over 6 days\n"
            f"  mastodon: #{HASHTAG} {campaign.first_day} to {campaign.last_day}:"
            f" {campaign.posts} posts, {campaign.broadcasts} partner vacancies,"
            f" {campaign.interactions} questions for the brand, {campaign.answered} answered;"
            f" {campaign.mentions} @-mentions, all answered\n",
            file=sys.stderr,
            flush=True,
        )
        yield
        for task in traffic:
            task.cancel()
        for task in traffic:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await mastodon.stop()
        await forum.stop()
        await api.stop()

    # The fake platforms live beside the service in the same event loop; the service itself
    # is exactly what `run` builds from the config file.
    app.cleanup_ctx.insert(0, platform)
    return app


def run_demo(
    *,
    port: int,
    workdir: str | None,
    configure: Callable[[Config], None],
    host: str = "127.0.0.1",
) -> None:
    """Run the demo until Ctrl-C; `configure` sets up logging from the generated config."""
    from monitor.web.server import run_app

    path = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="webcare-demo-"))
    # `host` 0.0.0.0 lets a container publish the port. The same server limits as `run`
    # (monitor/web/server.py); `configure` comes from the CLI so the demo need not import it.
    run_app(_demo_app(port, path, configure), host=host, port=port)
