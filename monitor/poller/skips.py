"""Objects a source could not read: remembered, retried at a slower pace, logged once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.domain import Skipped

# A skipped thread is re-tried after this, doubling on each further failure up to the cap:
# a private or broken topic costs a few requests an hour instead of one every poll.
FIRST_RETRY = timedelta(minutes=5)
MAX_RETRY = timedelta(hours=6)


@dataclass(kw_only=True)
class _Skip:
    reason: str
    failures: int
    retry_at: datetime


class SkipList:
    """Which objects of one source are skipped, for what reason, and when to try them again."""

    def __init__(self) -> None:
        self._skips: dict[str, _Skip] = {}

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._skips

    def __len__(self) -> int:
        return len(self._skips)

    def record(self, skipped: Mapping[str, Skipped], now: datetime) -> dict[str, Skipped]:
        """Remember what a fetch skipped; return the objects that were not skipped before."""
        new: dict[str, Skipped] = {}
        for object_id, why in skipped.items():
            reason = why.reason
            entry = self._skips.get(object_id)
            if entry is None:
                entry = _Skip(reason=reason, failures=0, retry_at=now)
                self._skips[object_id] = entry
                new[object_id] = why
            entry.failures += 1
            entry.reason = reason
            wait = min(MAX_RETRY, FIRST_RETRY * 2 ** (entry.failures - 1))
            entry.retry_at = now + wait
        return new

    def cleared(self, read: Iterable[str]) -> list[str]:
        """Forget objects that were read again; return them (they recovered)."""
        back = [object_id for object_id in read if object_id in self._skips]
        for object_id in back:
            del self._skips[object_id]
        return back

    def resting(self, now: datetime) -> frozenset[str]:
        """Skipped objects whose next try is not due yet: leave them out of this poll."""
        return frozenset(oid for oid, skip in self._skips.items() if skip.retry_at > now)
