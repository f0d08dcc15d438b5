"""The config blocks of each source type ([[sources]], told apart by `type`)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, SecretStr

from monitor.config.privacy import RetentionDays
from monitor.config.types import HttpUrl, OptionalSecret, Seconds, StrictModel

DEFAULT_GRAPH_API = "https://graph.facebook.com/v26.0"


class _SourceCommon(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    brand: str = Field(min_length=1)
    policy: str = "default"
    calendar: str = "office"
    poll_interval: Seconds = 60.0
    backfill_days: float = Field(default=14, ge=0)
    active_days: float = Field(default=14, gt=0)
    ignore_authors: list[str] = Field(default_factory=list)
    request_timeout: Seconds = 20.0
    # Left out: the [privacy] default (docs/data-protection.md).
    retention_days: RetentionDays | None = None
    store_text: bool | None = None


class FacebookPageConfig(_SourceCommon):
    """A Facebook Page polled through the Graph API."""

    type: Literal["facebook_page"]
    page_id: str = Field(min_length=1, pattern=r"^[0-9A-Za-z_.-]+$")
    access_token: SecretStr
    api_base_url: HttpUrl = DEFAULT_GRAPH_API
    # The app's secret: every Graph call then carries appsecret_proof (required when the app
    # has "Require App Secret" on). Defaults to [facebook_webhook] app_secret.
    app_secret: OptionalSecret = None


class MessengerConfig(_SourceCommon):
    """A Page's Messenger conversations, read through the Graph API."""

    type: Literal["messenger"]
    # Numeric: Messenger deliveries and message senders name the Page by its id only.
    page_id: str = Field(min_length=1, pattern=r"^[0-9]+$")
    access_token: SecretStr
    api_base_url: HttpUrl = DEFAULT_GRAPH_API
    app_secret: OptionalSecret = None
    # Private messages: their text is not kept unless the operator says so ([privacy] aside).
    store_text: bool | None = False


class InstagramConfig(_SourceCommon):
    """An Instagram professional account's media and their comments, through the Graph API."""

    type: Literal["instagram"]
    # Numeric: media, comments and webhook entries name the account by this id only.
    ig_user_id: str = Field(min_length=1, pattern=r"^[0-9]+$")
    # The account's own username: its replies are the brand's (comments carry `username`).
    username: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.]+$")
    access_token: SecretStr
    api_base_url: HttpUrl = DEFAULT_GRAPH_API
    app_secret: OptionalSecret = None


# The sources that read the Graph API with a Page access token (one token check, one proof).
GraphSourceConfig = FacebookPageConfig | MessengerConfig | InstagramConfig


class _ForumCommon(_SourceCommon):
    base_url: HttpUrl
    # Who answers for the brand: "alice" (username), "id:42" (user id), "group:support"
    # (group; "group:staff" also matches the platform's staff flag where it has one).
    moderators: list[str] = Field(min_length=1)


class DiscourseConfig(_ForumCommon):
    """A Discourse forum, optionally limited to some categories (by id)."""

    type: Literal["discourse"]
    api_key: SecretStr
    api_username: str = "system"
    categories: list[int] = Field(default_factory=list)
    # Discourse's admin API budget is per site and shared by every source on it.
    requests_per_minute: int = Field(default=60, gt=0)


class PhpbbAtomConfig(_ForumCommon):
    """A phpBB board read through its Atom feeds (author names only)."""

    type: Literal["phpbb_atom"]
    forums: list[int] = Field(default_factory=list)
    topics: list[int] = Field(default_factory=list)
    # The board's "posts per feed" setting; unknown (None) means learned from what feeds show.
    feed_limit: int | None = Field(default=None, gt=0)


class FlarumConfig(_ForumCommon):
    """A Flarum forum through its JSON:API, optionally limited to some tags (slugs)."""

    type: Literal["flarum"]
    api_key: SecretStr | None = None
    user_id: int | None = None
    tags: list[str] = Field(default_factory=list)


# A hashtag as written after '#': letters, digits and underscores (Mastodon's and Bluesky's rule).
Hashtag = Annotated[str, Field(pattern=r"^#?[^\s#]+$")]


class InteractionConfig(StrictModel):
    """Which consumer posts on an open network wait for the brand (docs/campaigns.md)."""

    # A post that names the brand's account (@acme).
    mentions: bool = True
    # A reply to a post of the brand's account or of a listed moderator account.
    replies: bool = True
    # A post in a watched hashtag that asks something: it has a question mark, or one of
    # `question_words` (whole words, any case).
    questions: bool = True
    question_words: list[str] = Field(default_factory=list)


class _OpenNetworkCommon(_SourceCommon):
    # The campaign hashtags to watch (with or without '#'; matched in any case).
    hashtags: list[Hashtag] = Field(default_factory=list)
    # Other accounts whose replies answer for the brand (a colleague's own account).
    moderators: list[str] = Field(default_factory=list)
    # Accounts whose posts in a hashtag are broadcasts (a partner's vacancies): counted, no item.
    partners: list[str] = Field(default_factory=list)
    interaction: InteractionConfig = Field(default_factory=InteractionConfig)
    # How often the hashtag timelines are read; mentions and replies go by poll_interval.
    poll_interval: Seconds = 120.0


class MastodonConfig(_OpenNetworkCommon):
    """The brand's account on a Mastodon server: its mentions, replies and watched hashtags."""

    type: Literal["mastodon"]
    base_url: HttpUrl  # the server, e.g. https://mastodon.social
    # The brand's account as the server shows it: "acme" (local) or "acme@other.example".
    account: str = Field(min_length=1, pattern=r"^@?[A-Za-z0-9_]+(@[A-Za-z0-9.-]+)?$")
    # A token of the brand's account with read:notifications and read:statuses (mentions);
    # hashtag timelines are public and read without it.
    access_token: SecretStr | None = None
    # Follow the server's streaming API, so a new post is polled at once instead of at the
    # next poll_interval (false: polling only).
    streaming: bool = True


class BlueskyConfig(_OpenNetworkCommon):
    """The brand's Bluesky account: its mentions, replies and watched hashtags or terms."""

    type: Literal["bluesky"]
    # The brand's handle, e.g. acme.bsky.social.
    handle: str = Field(min_length=3, pattern=r"^@?[A-Za-z0-9.-]+\.[A-Za-z]+$")
    # An app password of that account: Bluesky's post search needs a signed-in session.
    app_password: SecretStr
    # Where the account lives (its PDS); bsky.social for most.
    service_url: HttpUrl = "https://bsky.social"
    # Search terms watched besides the hashtags (a campaign's name without '#').
    terms: list[str] = Field(default_factory=list)


SourceConfig = Annotated[
    FacebookPageConfig
    | MessengerConfig
    | InstagramConfig
    | MastodonConfig
    | BlueskyConfig
    | DiscourseConfig
    | PhpbbAtomConfig
    | FlarumConfig,
    Field(discriminator="type"),
]

# Every source type, as `type` names it (the union's members, one per platform adapter).
SOURCE_TYPES = frozenset(
    get_args(member.model_fields["type"].annotation)[0]
    for member in get_args(get_args(SourceConfig)[0])
)
