"""Load and validate the TOML config; ConfigError lists every problem with its key path."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import typing
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.alerts.settings import AlertsConfig, ReceiverConfig, RosterConfig
from monitor.config_types import (
    SECRET_KEYS,
    HttpUrl,
    OptionalSecret,
    Seconds,
    StrictModel,
    TimeZone,
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
from monitor.words import counted

DEFAULT_GRAPH_API = "https://graph.facebook.com/v26.0"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///webcare-monitor.db"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The config is unusable; `problems` holds one "key.path: message" line per mistake."""

    def count(self) -> str:
        """'1 problem' / '3 problems'."""
        n = len(self.problems)
        return counted(n, "problem")

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ApiToken(StrictModel):
    """A bearer token for /api/v1/* and the queue page, limited to some brands ("*" = all)."""

    token: SecretStr
    brands: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    # Who holds the token (shown as who acknowledged or dismissed an item).
    name: str | None = None


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


class FacebookPageConfig(_SourceCommon):
    """A Facebook Page polled through the Graph API."""

    type: Literal["facebook_page"]
    page_id: str = Field(min_length=1, pattern=r"^[0-9A-Za-z_.-]+$")
    access_token: SecretStr
    api_base_url: HttpUrl = DEFAULT_GRAPH_API
    # The app's secret: every Graph call then carries appsecret_proof (required when the app
    # has "Require App Secret" on). Defaults to [facebook_webhook] app_secret.
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
    FacebookPageConfig | DiscourseConfig | PhpbbAtomConfig | FlarumConfig,
    Field(discriminator="type"),
]


class Config(StrictModel):
    """The whole validated configuration."""

    database_url: str = DEFAULT_DATABASE_URL
    http: HttpConfig = Field(default_factory=HttpConfig)
    facebook_webhook: FacebookWebhookConfig | None = None
    roster: RosterConfig = Field(default_factory=RosterConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    log: LogConfig = Field(default_factory=LogConfig)
    calendars: dict[str, CalendarConfig] = Field(default_factory=dict)
    policies: dict[str, PolicyConfig] = Field(default_factory=dict)
    sources: list[SourceConfig] = Field(min_length=1)

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
            and source.get("type") == "facebook_page"
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

    def policy(self, name: str) -> PolicyConfig:
        """The named policy; `default` exists unless overridden."""
        return self.policies.get(name, PolicyConfig())

    def secrets(self) -> list[str]:
        """Every secret value, so the logger can redact them wherever they appear."""
        found = [t.token.get_secret_value() for t in self.http.api_tokens]
        if self.http.link_secret is not None:
            found.append(self.http.link_secret.get_secret_value())
        for receiver in self.receivers:
            for secret in (receiver.url, receiver.secret):
                if secret is not None:
                    found.append(secret.get_secret_value())
        if self.facebook_webhook is not None:
            found.append(self.facebook_webhook.app_secret.get_secret_value())
            found.append(self.facebook_webhook.verify_token.get_secret_value())
        for source in self.sources:
            for key in SECRET_KEYS:
                value = getattr(source, key, None)
                if isinstance(value, SecretStr):
                    found.append(value.get_secret_value())
        return found


def _interpolate(value: Any, path: str, problems: list[str]) -> Any:
    """Replace ${VAR} in every string; a missing variable is a problem at that path."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_REF.sub(replace, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, _join(path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _read_secret_files(value: Any, path: str, problems: list[str], base: Path) -> Any:
    """Resolve `<secret>_file` keys into `<secret>` by reading the file."""
    if isinstance(value, list):
        return [_read_secret_files(v, f"{path}[{i}]", problems, base) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        secret = key.removesuffix("_file")
        if key.endswith("_file") and secret in SECRET_KEYS:
            key_path = _join(path, key)
            if secret in value:
                problems.append(f"{key_path}: give either {secret} or {key}, not both")
                continue
            file_path = base / str(item)
            try:
                out[secret] = file_path.read_text(encoding="utf-8").strip()
            except OSError as err:
                problems.append(f"{key_path}: cannot read {file_path}: {err.strerror}")
                out[secret] = ""  # already reported; don't add "field required" on top
            continue
        out[key] = _read_secret_files(item, _join(path, key), problems, base)
    return out


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _known_keys() -> frozenset[str]:
    """Every key the config knows, in any section (for did-you-mean hints)."""
    models: list[type[BaseModel]] = [Config]
    keys: set[str] = set()
    while models:
        model = models.pop()
        for name, info in model.model_fields.items():
            keys.add(name)
            if name in SECRET_KEYS:
                keys.add(f"{name}_file")
            for arg in typing.get_args(info.annotation) or (info.annotation,):
                for inner in typing.get_args(arg) or (arg,):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        models.append(inner)
    for source in typing.get_args(typing.get_args(SourceConfig)[0]):
        keys.update(source.model_fields)
    return frozenset(keys)


def _in_words(error: Any) -> str:
    """A pydantic error as the operator would say it: what is wrong and how to fix it."""
    kind = error["type"]
    key = error["loc"][-1] if error["loc"] else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(key), _known_keys(), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        if key in SECRET_KEYS:
            return f"missing: set {key} (or {key}_file = a file that holds it)"
        return f"missing: this key is required ({key})" if key else "missing"
    if kind == "too_short":
        return "must list at least one entry"
    return str(error["msg"]).removeprefix("Value error, ")


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    """('sources', 1, 'facebook_page', 'page_id') -> 'sources[1].page_id'."""
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif i > 0 and isinstance(loc[i - 1], int) and part in _TAGS:
            continue  # the discriminator tag pydantic inserts for tagged unions
        else:
            path = _join(path, part)
    return path


_TAGS = frozenset({"facebook_page", "discourse", "phpbb_atom", "flarum"})


def _reference_problems(data: dict[str, Any]) -> Iterator[str]:
    """Cross-references pydantic cannot see: unknown policy/calendar names, duplicate names."""
    calendars = set(data.get("calendars", {}) or {}) | {"always", "office"}
    policies = set(data.get("policies", {}) or {}) | {"default"}
    for name, policy in (data.get("policies") or {}).items():
        coverage = policy.get("coverage", "always") if isinstance(policy, dict) else "always"
        if isinstance(coverage, str) and coverage not in calendars:
            defined = sorted(calendars)
            yield f"policies.{name}.coverage: unknown calendar {coverage!r} (defined: {defined})"
    seen: dict[str, int] = {}
    sources = data.get("sources")
    if not isinstance(sources, list):
        return
    for i, source in enumerate(sources):
        if not isinstance(source, dict):
            continue
        policy = source.get("policy", "default")
        if isinstance(policy, str) and policy not in policies:
            yield f"sources[{i}].policy: unknown policy {policy!r} (defined: {sorted(policies)})"
        calendar = source.get("calendar", "office")
        if isinstance(calendar, str) and calendar not in calendars:
            defined = sorted(calendars)
            yield f"sources[{i}].calendar: unknown calendar {calendar!r} (defined: {defined})"
        name = source.get("name")
        if isinstance(name, str):
            if name in seen:
                first = seen[name]
                yield f"sources[{i}].name: duplicate source name {name!r} (also sources[{first}])"
            seen.setdefault(name, i)


def parse_config(data: dict[str, Any], *, base_dir: Path | None = None) -> Config:
    """Validate already-parsed TOML data; raise ConfigError with every problem."""
    problems: list[str] = []
    data = _interpolate(data, "", problems)
    data = _read_secret_files(data, "", problems, base_dir or Path.cwd())
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        for error in err.errors():
            where = _loc_to_path(error["loc"]) or "(top level)"
            problems.append(f"{where}: {_in_words(error)}")
    problems.extend(_reference_problems(data))
    if problems or config is None:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path) -> Config:
    """Read, interpolate and validate a TOML config file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError([f"{path}: cannot read config: {err.strerror}"]) from err
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError([f"{path}: invalid TOML: {err}"]) from err
    return parse_config(data, base_dir=path.parent)
