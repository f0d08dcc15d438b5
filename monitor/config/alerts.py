"""Config models for alerting: the roster of who is on duty and the receivers to notify."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from monitor.config.types import (
    AppriseUrls,
    OptionalSeconds,
    Seconds,
    SecretHttpUrl,
    StrictModel,
    TimeZone,
    standard_webhook_key,
)

# taken: somebody acknowledged an alerted item (announced where the alert was seen).
# window: a Messenger conversation's 24 h reply window closes soon and its item waits.
AlertKind = Literal[
    "warning", "breach", "resolved", "escalation", "reminder", "handover", "taken", "window"
]
Role = Literal["student", "backup", "lead"]
ALL_KINDS: tuple[AlertKind, ...] = (
    "warning",
    "breach",
    "resolved",
    "escalation",
    "reminder",
    "handover",
    "taken",
    "window",
)
# Receiver types whose body has no place for an empty list of items (Alertmanager's never is).
NEEDS_ITEMS = frozenset({"alertmanager"})


def _all_kinds() -> list[AlertKind]:
    return list(ALL_KINDS)


def _escalation_roles() -> list[Literal["backup", "lead"]]:
    return ["backup", "lead"]


def _all_roles() -> list[Role]:
    return ["student", "backup", "lead"]


class ShiftConfig(StrictModel):
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


class OverrideConfig(StrictModel):
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


# What each handle looks like, and how to say it to someone who got it wrong.
_HANDLES = {
    "slack": (
        r"^[UW][A-Z0-9]{2,20}$",
        "a Slack member id such as U024BE7LH (the person's Slack profile, ⋮, Copy member ID)",
    ),
    "teams": (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "the person's Teams sign-in address"),
    "mattermost": (r"^[a-z0-9._-]{1,64}$", "a Mattermost username without the @, like nina.v"),
    "email": (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an e-mail address"),
    "phone": (r"^\+[0-9]{6,15}$", "a phone number in international form, like +31612345678"),
}


class PersonConfig(StrictModel):
    """How each receiver reaches one person of the roster, so alerts mention them."""

    slack: str | None = None  # member id: the message mentions <@U024BE7LH>, Slack notifies
    teams: str | None = None  # sign-in address: the Adaptive Card mentions them
    mattermost: str | None = None  # username: @nina.v
    email: str | None = None
    phone: str | None = None
    # The names or ids this person answers under on the platforms (a forum username, a page
    # admin's name): their first replies count under their roster id in the metrics.
    responds_as: list[str] = Field(default_factory=list)

    @field_validator("slack", "teams", "mattermost", "email", "phone")
    @classmethod
    def _looks_right(cls, value: str | None, info: ValidationInfo) -> str | None:
        pattern, expected = _HANDLES[str(info.field_name)]
        if value is not None and not re.fullmatch(pattern, value):
            raise ValueError(f"{value!r} is not {expected}")
        return value

    def handles(self) -> dict[str, str]:
        """The handles given, by receiver type (or medium)."""
        return {k: v for k, v in self.model_dump(exclude={"responds_as"}).items() if v is not None}


class RosterConfig(StrictModel):
    """Who is on duty: weekly shifts, dated overrides, and optionally a team .ics calendar."""

    timezone: TimeZone = "Europe/Amsterdam"
    shifts: list[ShiftConfig] = Field(default_factory=list)
    overrides: list[OverrideConfig] = Field(default_factory=list)
    # An iCalendar file path or http(s) URL the team already keeps; event SUMMARY = student.
    # A secret (a calendar's URL carries its private token): or ics_file, a file holding it.
    ics: str | None = None
    ics_refresh: Seconds = 900.0
    # Told when nobody is on duty (a roster gap).
    lead: str | None = None
    # Each person's handles ([roster.people.night-nina] slack = "U024BE7LH" ...): alerts
    # mention the person they are for. When given, every name of the roster needs an entry.
    people: dict[str, PersonConfig] = Field(default_factory=dict)

    @field_validator("ics")
    @classmethod
    def _a_place_not_a_calendar(cls, value: str | None) -> str | None:
        if value is not None and "BEGIN:VCALENDAR" in value:
            raise ValueError(
                "this is a calendar's content: ics (or the file ics_file names) holds the"
                " calendar's URL or path, not the calendar itself"
            )
        return value

    def moderator_accounts(self) -> dict[str, str]:
        """Platform name or id -> roster id: every roster name as itself, plus responds_as."""
        entries: list[ShiftConfig | OverrideConfig] = [*self.shifts, *self.overrides]
        roles = [
            self.lead,
            *self.people,
            *(n for e in entries for n in (e.student, e.backup, e.lead)),
        ]
        accounts = {name: name for name in roles if name is not None}
        for person, config in self.people.items():
            accounts.update((account, person) for account in config.responds_as)
        return accounts

    @model_validator(mode="after")
    def _everyone_reachable(self) -> RosterConfig:
        if not self.people:
            return self
        entries: list[ShiftConfig | OverrideConfig] = [*self.shifts, *self.overrides]
        roles = [self.lead, *(n for e in entries for n in (e.student, e.backup, e.lead))]
        named = {name for name in roles if name is not None}
        missing = sorted(n for n in named if n not in self.people)
        if missing:
            raise ValueError(
                f"no [roster.people] entry for {', '.join(map(repr, missing))}:"
                " alerts for them could mention nobody (add their handles)"
            )
        unused = sorted(set(self.people) - named)
        if unused and (self.shifts or self.overrides):
            raise ValueError(
                f"[roster.people] names {', '.join(map(repr, unused))}, who is in no shift,"
                " override or lead (a typo?)"
            )
        return self


class ReceiverConfig(StrictModel):
    """Where notifications go: a signed JSON webhook, a Slack incoming webhook, or the console."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    # webhook: signed webcare.alert.v1 JSON; slack: incoming webhook (Block Kit); teams: a
    # Teams workflow webhook (Adaptive Card); mattermost: incoming webhook (Markdown);
    # alertmanager: Alertmanager's webhook body (version 4); console: one line on stdout;
    # apprise: a short text to each of `urls` (e-mail, SMS, Telegram, ntfy, ...) via Apprise.
    type: Literal["webhook", "slack", "console", "teams", "mattermost", "alertmanager", "apprise"]
    url: SecretHttpUrl | None = None
    urls: AppriseUrls | None = None  # apprise only; or urls_file, one URL per line
    # HMAC-SHA256 key for `webhook` and `alertmanager` receivers: `whsec_<base64>` for a
    # webhook signed the Standard Webhooks way, any text for X-Webcare-Signature.
    secret: SecretStr | None = None
    # webhook only: "standard" = Standard Webhooks headers (webhook-id, webhook-timestamp,
    # webhook-signature); "legacy" = X-Webcare-Signature: t=...,v1=... as before.
    signature: Literal["standard", "legacy"] = "standard"
    kinds: list[AlertKind] = Field(default_factory=_all_kinds)
    # Whom the receiver speaks for: a notification addressed to another role (an escalation
    # to the lead, say) is not sent to it. Resolutions are addressed to nobody: every
    # receiver that wants `resolved` gets them.
    roles: list[Role] = Field(default_factory=_all_roles, min_length=1)
    brands: list[str] = Field(default_factory=lambda: ["*"])
    sources: list[str] = Field(default_factory=lambda: ["*"])
    timeout: Seconds = 10.0
    # Give up (dead letter) when a notification is older than this.
    max_age: Seconds = 86400.0

    @model_validator(mode="after")
    def _url_when_needed(self) -> ReceiverConfig:
        if self.type == "apprise":
            if not self.urls or self.url is not None:
                raise ValueError("an apprise receiver needs `urls` (a list), and no `url`")
            return self
        if self.urls is not None:
            raise ValueError("`urls` is for apprise receivers")
        if self.type != "console" and self.url is None:
            raise ValueError(f"a {self.type} receiver needs `url`")
        return self

    @model_validator(mode="after")
    def _signature_fits(self) -> ReceiverConfig:
        if "signature" in self.model_fields_set and self.type != "webhook":
            raise ValueError(
                "`signature` is for webhook receivers (an alertmanager receiver signs"
                " X-Webcare-Signature, as before)"
            )
        if self.type == "webhook" and self.signature == "standard" and self.secret is not None:
            standard_webhook_key(self.secret.get_secret_value())  # ValueError says what to do
        return self


class AlertsConfig(StrictModel):
    """Escalation, reminders, shift handover and the ack/dismiss links in notifications."""

    # After a breach without ack, reply or dismissal: the first role in `escalate_to` is told,
    # then each next role another `escalate_after` later.
    escalate_after: Seconds = 900.0
    escalate_to: list[Literal["backup", "lead"]] = Field(default_factory=_escalation_roles)
    # The on-duty student is reminded this often after a breach until the item is answered,
    # acknowledged or dismissed; "off" switches reminders off.
    remind_every: OptionalSeconds = 1800.0
    # At the start of each shift the incoming student gets what is waiting, per source:
    # always, only when something waits, or never.
    handover: Literal["always", "when_waiting", "off"] = "always"
    # How long the ack / dismiss links in a notification stay valid.
    link_ttl: Seconds = 7 * 86400.0

    @field_validator("escalate_to")
    @classmethod
    def _distinct(cls, value: list[Literal["backup", "lead"]]) -> list[Literal["backup", "lead"]]:
        if len(set(value)) != len(value):
            raise ValueError("each role at most once")
        return value
