"""The whole configuration: HTTP, logging, calendars, policies, sources, alerting."""

from __future__ import annotations

import importlib.util
from datetime import date
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.config.alerts import AlertsConfig, ReceiverConfig, RosterConfig
from monitor.config.privacy import PrivacyConfig, SourcePrivacy, effective
from monitor.config.sources import SourceConfig
from monitor.config.types import (
    SECRET_KEYS,
    HttpUrl,
    OptionalSeconds,
    OptionalSecret,
    Seconds,
    StrictModel,
    TimeZone,
    url_secrets,
)
from monitor.sla.calendar import (
    ALWAYS,
    WEEKDAYS,
    WeeklyCalendar,
    build_calendar,
    check_holidays,
    parse_day_hours,
    parse_hours,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///webcare-monitor.db"


class ApiToken(StrictModel):
    """A bearer token for /api/v1/* and the queue page, limited to some brands ("*" = all)."""

    token: SecretStr
    brands: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    # Who holds the token (shown as who acknowledged or dismissed an item).
    name: str | None = None
    # read: items, report, audit of its brands; act: ack, dismiss, undo; admin: all the audit.
    scopes: list[Literal["read", "act", "admin"]] = Field(default=["read", "act"], min_length=1)


class HttpConfig(StrictModel):
    """Where the HTTP server listens, and who may read consumers' messages through it."""

    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    api_tokens: list[ApiToken] = Field(default_factory=list)
    # The address people reach this service at, for the queue and ack/dismiss links in
    # notifications (default http://host:port).
    public_url: HttpUrl | None = None
    # Signs the ack/dismiss links; when left out it is derived from the API tokens (so
    # rotating the tokens also invalidates old links). No tokens and no secret: no links.
    link_secret: OptionalSecret = None

    def base_url(self) -> str:
        """Where links point: public_url, else the listen address."""
        return self.public_url or f"http://{self.host}:{self.port}"


class FacebookWebhookConfig(StrictModel):
    """Facebook Page webhooks: the app secret signs deliveries, the verify token the handshake."""

    app_secret: SecretStr
    verify_token: SecretStr


class LogConfig(StrictModel):
    """Log level and format (auto = JSON unless stderr is a terminal)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class ClusterConfig(StrictModel):
    """Several instances on one PostgreSQL: who this instance is and how long a lease lasts."""

    # This instance's name in leases, logs and webcare_instance_sources (default: `run
    # --instance`, else $WEBCARE_INSTANCE, else the host name). Unique per running instance.
    instance: str | None = Field(default=None, min_length=1, max_length=100)
    # A source or receiver whose holder stops renewing is taken over after this long; renewed
    # every third of it. Default: half the shortest poll_interval, between 2 s and 30 s, so a
    # dead instance's sources are polled again within two intervals (interval + jitter + the
    # lease + a third of it for the taker's next round).
    lease_seconds: OptionalSeconds = Field(default=None, ge=2, le=600)


class CalendarConfig(StrictModel):
    """An office or coverage calendar: time zone, weekly hours, holidays, closed and half days."""

    timezone: TimeZone = "Europe/Amsterdam"
    # Weekly intervals in local wall time, e.g. "mon-fri 09:00-12:30", "fri 18:00-02:00".
    hours: list[str] = Field(default_factory=lambda: ["mon-fri 09:00-17:00"])
    # Closed on public holidays only when a country is listed (ISO code, e.g. "NL").
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    closed_dates: list[date] = Field(default_factory=list)
    # Dates with shorter hours: {"2026-12-24" = "09:00-13:00"} (several: a list).
    half_days: dict[date, str | list[str]] = Field(default_factory=dict)
    weekend_days: list[str] = Field(default_factory=lambda: ["sat", "sun"])

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('at least one interval is needed (use calendar "always" for 24/7)')
        for spec in value:
            parse_hours(spec)
        return value

    @field_validator("weekend_days")
    @classmethod
    def _valid_weekend(cls, value: list[str]) -> list[str]:
        for day in value:
            if day.lower() not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
        return value

    @model_validator(mode="after")
    def _valid_holidays_and_half_days(self) -> CalendarConfig:
        check_holidays(self.holidays_country, self.holidays_subdivision)
        for day, spec in self.half_days.items():
            for part in [spec] if isinstance(spec, str) else spec:
                parse_day_hours(part, f"half day {day}")
        return self

    def build(self, name: str) -> WeeklyCalendar:
        """Turn the validated settings into a calendar."""
        return build_calendar(
            name,
            timezone=self.timezone,
            hours=self.hours,
            holidays_country=self.holidays_country,
            holidays_subdivision=self.holidays_subdivision,
            closed_dates=self.closed_dates,
            half_days=self.half_days,
            weekend_days=self.weekend_days,
        )


class PolicyConfig(StrictModel):
    """SLA targets per period and how a reply is matched to an item."""

    office_hours: Seconds = 3600.0
    after_hours: Seconds = 1800.0
    warn_at: float = Field(default=0.75, gt=0, lt=1)
    reply_match: Literal["thread", "direct"] = "thread"
    # When the SLA clock runs; consumers expect answers when offices are closed.
    coverage: str = "always"

    def target(self, period: str) -> float:
        """Target in seconds for `office_hours` or `after_hours`."""
        return self.office_hours if period == "office_hours" else self.after_hours


class Config(StrictModel):
    """The whole validated configuration."""

    database_url: str = DEFAULT_DATABASE_URL
    http: HttpConfig = Field(default_factory=HttpConfig)
    facebook_webhook: FacebookWebhookConfig | None = None
    roster: RosterConfig = Field(default_factory=RosterConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    log: LogConfig = Field(default_factory=LogConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    calendars: dict[str, CalendarConfig] = Field(default_factory=dict)
    policies: dict[str, PolicyConfig] = Field(default_factory=dict)
    sources: list[SourceConfig] = Field(min_length=1)

    @field_validator("database_url")
    @classmethod
    def _driver_installed(cls, value: str) -> str:
        # asyncpg is an extra: say how to get it instead of failing at start with an import error.
        if value.startswith("postgresql+asyncpg") and importlib.util.find_spec("asyncpg") is None:
            raise ValueError(
                "the PostgreSQL driver is not installed: pip install 'webcare-monitor[postgres]'"
                " (requirements/service.lock includes it)"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _app_secret_for_pages(cls, data: Any) -> Any:
        """Pages without their own app_secret sign their calls with the webhook's."""
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
            return data
        webhook = data.get("facebook_webhook")
        secret = webhook.get("app_secret") if isinstance(webhook, dict) else None
        if secret is None:
            return data
        sources = [
            {**source, "app_secret": secret}
            if isinstance(source, dict)
            and source.get("type") in ("facebook_page", "messenger", "instagram")
            and not source.get("app_secret")
            else source
            for source in data["sources"]
        ]
        return {**data, "sources": sources}

    def calendar(self, name: str) -> WeeklyCalendar:
        """The named calendar; `always` and `office` (NL hours and holidays) are built in."""
        if name == "always":
            return ALWAYS
        default = CalendarConfig(holidays_country="NL")
        return self.calendars.get(name, default).build(name)

    def lease_seconds(self) -> float:
        """How long a lease lasts: configured, else half the shortest poll interval (2-30 s)."""
        if self.cluster.lease_seconds is not None:
            return float(self.cluster.lease_seconds)
        shortest = min(float(s.poll_interval) for s in self.sources)
        return max(2.0, min(30.0, shortest / 2))

    def source_privacy(self, name: str) -> SourcePrivacy:
        """A source's retention and store_text, the [privacy] defaults filled in."""
        source = next(s for s in self.sources if s.name == name)
        return effective(self.privacy, source.retention_days, source.store_text)

    def policy(self, name: str) -> PolicyConfig:
        """The named policy; `default` exists unless overridden."""
        return self.policies.get(name, PolicyConfig())

    def secrets(self) -> list[str]:
        """Every secret value, so the logger can redact them wherever they appear."""
        found = [t.token.get_secret_value() for t in self.http.api_tokens]
        if self.http.link_secret is not None:
            found.append(self.http.link_secret.get_secret_value())
        for receiver in self.receivers:
            if receiver.url is not None:
                # The whole URL, and the parts of it that may show up alone (a hook's token).
                found.extend(url_secrets(receiver.url.get_secret_value()))
            if receiver.secret is not None:
                found.append(receiver.secret.get_secret_value())
            for url in receiver.urls or ():
                found.extend(url_secrets(url.get_secret_value()))
        if self.roster.ics is not None and "://" in self.roster.ics:
            # A calendar's URL and its token-shaped parts (Google's private-0a1b..., a ?token=).
            found.extend(url_secrets(self.roster.ics))
        if self.privacy.pseudonym_key is not None:
            found.append(self.privacy.pseudonym_key.get_secret_value())
        if self.facebook_webhook is not None:
            found.append(self.facebook_webhook.app_secret.get_secret_value())
            found.append(self.facebook_webhook.verify_token.get_secret_value())
        for source in self.sources:
            for key in SECRET_KEYS:
                value = getattr(source, key, None)
                if isinstance(value, SecretStr):
                    found.append(value.get_secret_value())
        return found
