"""Value types every settings model shares: durations, time zones, URLs, secrets, strict models."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr

from monitor.durations import parse_duration

# Keys that may instead be given as `<key>_file` (systemd LoadCredential= friendly).
SECRET_KEYS = frozenset(
    {
        "access_token",
        "app_secret",
        "verify_token",
        "api_key",
        "password",
        "token",
        "secret",
        "url",
        "link_secret",
    }
)


class StrictModel(BaseModel):
    """A config section: an unknown key is a typo to report, and nothing changes once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _optional_duration(value: object) -> float | None:
    """A duration, or None for "off" / 0 / false (the feature is switched off)."""
    if value is None or value is False or value == 0 or value == "off":
        return None
    if isinstance(value, str | int | float):
        return parse_duration(value)
    raise ValueError("expected a duration such as '30m', or \"off\"")


def _known_zone(value: str) -> str:
    """An IANA time zone name that this machine's tz database knows."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown IANA time zone {value!r}") from err
    return value


def _http_url(value: str) -> str:
    """An http(s) base URL, without the trailing slash (callers append paths)."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


def _secret_http_url(value: SecretStr) -> SecretStr:
    """An http(s) URL that is itself a secret (a webhook URL carries its token)."""
    text = value.get_secret_value()
    if not text.startswith(("http://", "https://")) or "://" not in text or len(text) < 10:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _blank_is_none(value: SecretStr | None) -> SecretStr | None:
    """An empty secret counts as not given, so its fallback applies."""
    return value if value is not None and value.get_secret_value().strip() else None


# Operators write "30m" or "1h30m"; the code wants seconds.
Seconds = Annotated[float, BeforeValidator(parse_duration)]
# "off" reads better in a config than a magic 0 for a feature that is switched off.
OptionalSeconds = Annotated[float | None, BeforeValidator(_optional_duration)]
TimeZone = Annotated[str, AfterValidator(_known_zone)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
SecretHttpUrl = Annotated[SecretStr, AfterValidator(_secret_http_url)]
# A blank value (an empty environment variable, say) means "not given", so a fallback applies.
OptionalSecret = Annotated[SecretStr | None, AfterValidator(_blank_is_none)]
