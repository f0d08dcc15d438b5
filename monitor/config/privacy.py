"""What is kept of consumers' posts, and for how long ([privacy] and per-source overrides)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from monitor.config.types import OptionalSecret, Seconds, StrictModel

DEFAULT_RETENTION_DAYS = 365.0


def _days(value: object) -> object:
    """0, false and "off" all mean "kept until erased"."""
    return "off" if value in (0, False, "off") else value


# Days, or "off"; on a source, left out means the [privacy] default.
RetentionDays = Annotated[Annotated[float, Field(gt=0)] | Literal["off"], BeforeValidator(_days)]


class PrivacyConfig(StrictModel):
    """The global default of every source, and the pseudonym key."""

    # After this many days a message's text and its consumer's identity are purged; the
    # timing facts every report figure needs stay. "off": kept until erased.
    retention_days: RetentionDays = DEFAULT_RETENTION_DAYS
    # false: a consumer's text is never stored (queue page and alerts show no excerpt).
    store_text: bool = True
    # HMAC-SHA256 key of the pseudonyms (author ids and names); or pseudonym_key_file. Without
    # it one is generated once and kept in the database (docs/data-protection.md).
    pseudonym_key: OptionalSecret = None
    # How often the service purges what is past its retention.
    purge_interval: Seconds = Field(default=3600.0, gt=0)


@dataclass(frozen=True, kw_only=True)
class SourcePrivacy:
    """One source's effective settings: its own where given, else [privacy]'s."""

    retention_days: float | None  # None: kept until erased
    store_text: bool


def effective(
    default: PrivacyConfig, retention_days: float | str | None, store_text: bool | None
) -> SourcePrivacy:
    """A source's settings with the [privacy] defaults filled in."""
    days = default.retention_days if retention_days is None else retention_days
    return SourcePrivacy(
        retention_days=None if days == "off" else float(days),
        store_text=default.store_text if store_text is None else store_text,
    )
