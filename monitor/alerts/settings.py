"""Config models for alerting: the roster of who is on duty and the receivers to notify."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from monitor.durations import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration)]
AlertKind = Literal["warning", "breach", "resolved"]


def _all_kinds() -> list[AlertKind]:
    return ["warning", "breach", "resolved"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_url(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not text.startswith(("http://", "https://")) or "://" not in text or len(text) < 10:
        raise ValueError("must be an http:// or https:// URL")
    return value


class ShiftConfig(_Model):
    """A weekly shift: `when` like "mon-fri 17:00-23:00", for some brands or sources."""

    when: str
    student: str = Field(min_length=1)
    backup: str | None = None
    lead: str | None = None
    brands: list[str] = Field(default_factory=lambda: ["*"])
    sources: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("when")
    @classmethod
    def _valid_when(cls, value: str) -> str:
        from monitor.sla.calendar import parse_hours

        parse_hours(value)
        return value


class OverrideConfig(_Model):
    """A dated exception: on `date` (or from `start` to `end`) someone else is on duty."""

    date: dt.date | None = None
    hours: str | None = None  # "17:00-23:00" on `date`; the whole day when left out
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    student: str = Field(min_length=1)
    backup: str | None = None
    lead: str | None = None
    brands: list[str] = Field(default_factory=lambda: ["*"])
    sources: list[str] = Field(default_factory=lambda: ["*"])

    @model_validator(mode="after")
    def _one_form(self) -> OverrideConfig:
        dated = self.date is not None
        ranged = self.start is not None or self.end is not None
        if dated == ranged:
            raise ValueError("give either `date` (with optional `hours`) or `start` and `end`")
        if ranged and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("`start` and `end` are both needed, with end after start")
        if self.hours is not None:
            from monitor.sla.calendar import parse_day_hours

            parse_day_hours(self.hours, f"override on {self.date}")
        return self


class RosterConfig(_Model):
    """Who is on duty: weekly shifts, dated overrides, and optionally a team .ics calendar."""

    timezone: str = "Europe/Amsterdam"
    shifts: list[ShiftConfig] = Field(default_factory=list)
    overrides: list[OverrideConfig] = Field(default_factory=list)
    # An iCalendar file path or http(s) URL the team already keeps; event SUMMARY = student.
    ics: str | None = None
    ics_refresh: Seconds = 900.0
    # Told when nobody is on duty (a roster gap).
    lead: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown IANA time zone {value!r}") from err
        return value


class ReceiverConfig(_Model):
    """Where notifications go: a signed JSON webhook, a Slack incoming webhook, or the console."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    type: Literal["webhook", "slack", "console"]
    url: Annotated[SecretStr, AfterValidator(_check_url)] | None = None
    # HMAC-SHA256 key for `webhook` receivers (X-Webcare-Signature).
    secret: SecretStr | None = None
    kinds: list[AlertKind] = Field(default_factory=_all_kinds)
    brands: list[str] = Field(default_factory=lambda: ["*"])
    sources: list[str] = Field(default_factory=lambda: ["*"])
    timeout: Seconds = 10.0
    # Give up (dead letter) when a notification is older than this.
    max_age: Seconds = 86400.0

    @model_validator(mode="after")
    def _url_when_needed(self) -> ReceiverConfig:
        if self.type != "console" and self.url is None:
            raise ValueError(f"a {self.type} receiver needs `url`")
        return self
