"""The `moderator` label: a roster person's id or `other`, never a name from a platform."""

from __future__ import annotations

from collections.abc import Mapping

# At most this many distinct roster ids per source; the rest count as `other` (docs/metrics.md).
MAX_MODERATORS_PER_SOURCE = 50
OTHER = "other"


class ModeratorLabels:
    """Maps a responder as the platform names it to the roster person it is, else `other`.

    Bounded twice: only roster ids can appear, and at most MAX_MODERATORS_PER_SOURCE of them
    per source, so neither a platform nor a large roster can grow the series without limit.
    """

    def __init__(self, accounts: Mapping[str, str] | None = None) -> None:
        # Platform name or id (folded) -> roster person id.
        self._accounts = {k.casefold(): v for k, v in (accounts or {}).items()}
        self._seen: dict[str, set[str]] = {}

    def label(self, source: str, responder: str | None) -> str:
        """The label value for a first reply by `responder` on `source`."""
        person = self._accounts.get(responder.casefold()) if responder else None
        if person is None:
            return OTHER
        seen = self._seen.setdefault(source, set())
        if person not in seen:
            if len(seen) >= MAX_MODERATORS_PER_SOURCE:
                return OTHER
            seen.add(person)
        return person
