"""Value types every settings model shares: durations, time zones, URLs, secrets, strict models."""

from __future__ import annotations

import base64
import binascii
import re
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
        "urls",  # apprise: the file holds one URL per line
        "link_secret",
        "ics",  # the roster's .ics URL: its path or query usually holds a private token
        "pseudonym_key",
        "app_password",  # Bluesky
    }
)

# Standard Webhooks (https://www.standardwebhooks.com/): a secret is "whsec_" + the base64 of
# the HMAC key, which should be 24 to 64 random bytes.
STANDARD_SECRET_PREFIX = "whsec_"
MIN_STANDARD_KEY_BYTES = 24


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


def _url_lines(value: object) -> object:
    """`urls_file` gives one text: one URL per line; blank lines and `#` comments are skipped."""
    if isinstance(value, str):
        lines = (line.strip() for line in value.splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    return value


def _apprise_urls(value: list[SecretStr]) -> list[SecretStr]:
    """URLs Apprise can send to; a bad one is named by position and scheme, never shown whole."""
    import logging

    import apprise

    # Apprise logs an unparseable URL in full: keep that secret out of the output.
    quiet = logging.getLogger("apprise")
    was_disabled, quiet.disabled = quiet.disabled, True
    try:
        for number, url in enumerate(value, start=1):
            text = url.get_secret_value()
            if not apprise.Apprise().add(text):
                scheme = text.partition("://")[0] if "://" in text else ""
                what = f"a {scheme}:// URL" if scheme.isalnum() and len(scheme) < 20 else "it"
                raise ValueError(
                    f"URL {number} of {len(value)}: Apprise cannot use {what} (an unknown"
                    " scheme, or parts missing or wrong; the URL is not shown: it may hold a"
                    " secret)"
                )
    finally:
        quiet.disabled = was_disabled
    return value


_HOST = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?$")
_SECRET_QUERY_KEYS = frozenset(
    {"token", "key", "apikey", "api_key", "pass", "password", "secret", "access_token"}
)


def url_secrets(url: str) -> list[str]:
    """A secret URL and the parts of it that may show up alone in a log line: the password,
    secret-named query values, and token-shaped segments (Telegram's tgram://BOT_TOKEN/...)."""
    found = [url]
    rest = url.partition("://")[2]
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key.lower() in _SECRET_QUERY_KEYS:
            found.append(value)
    for part in [host, *path.split("/")]:
        if _HOST.match(part):
            continue  # smtp.example.org:587 is an address, not a token
        if len(part) >= 16 and any(c.isdigit() for c in part) and any(c.isalpha() for c in part):
            found.append(part)
    return [part for part in found if part]


def standard_webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret `whsec_<base64>` (padding optional), as the
    `standardwebhooks` package derives it; ValueError, never quoting the secret, otherwise."""
    how = (
        'a Standard Webhooks secret is "whsec_" followed by the base64 of at least'
        f" {MIN_STANDARD_KEY_BYTES} random bytes (make one with: python3 -c 'import base64,"
        ' secrets; print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())\');'
        ' or set signature = "legacy" to keep signing X-Webcare-Signature with this secret'
    )
    if not secret.startswith(STANDARD_SECRET_PREFIX):
        raise ValueError(f"the secret does not start with whsec_: {how}")
    encoded = secret.removeprefix(STANDARD_SECRET_PREFIX)
    try:
        # Strict: the package decodes leniently (skipping characters that are not base64),
        # so URL-safe base64 or a stray character would give receivers another key.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the secret after whsec_ is not base64: {how}") from None
    if len(key) < MIN_STANDARD_KEY_BYTES:
        raise ValueError(f"the secret's key is {len(key)} bytes, too short: {how}")
    return key


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
# Apprise URLs (mailto://, tgram://, ntfy://, ...): secrets, checked by Apprise when loading.
AppriseUrls = Annotated[list[SecretStr], BeforeValidator(_url_lines), AfterValidator(_apprise_urls)]
# A blank value (an empty environment variable, say) means "not given", so a fallback applies.
OptionalSecret = Annotated[SecretStr | None, AfterValidator(_blank_is_none)]
