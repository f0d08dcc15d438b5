"""The config blocks of each source type ([[sources]], told apart by `type`)."""

from __future__ import annotations

from typing import Annotated, Literal

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


SourceConfig = Annotated[
    FacebookPageConfig
    | MessengerConfig
    | InstagramConfig
    | DiscourseConfig
    | PhpbbAtomConfig
    | FlarumConfig,
    Field(discriminator="type"),
]
