"""The `moderators` config entries sorted by kind, for each platform to read its own way."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ModeratorEntries:
    """Config entries by kind, values stripped: "alice", "id:42", "group:support"."""

    usernames: tuple[str, ...]
    user_ids: tuple[str, ...]
    groups: tuple[str, ...]

    @classmethod
    def sort(
        cls, entries: Iterable[str], *, is_id: Callable[[str], bool] = bool
    ) -> ModeratorEntries:
        """Sort entries; an "id:" whose value fails `is_id`, or an empty one, is a username."""
        usernames: list[str] = []
        user_ids: list[str] = []
        groups: list[str] = []
        for entry in entries:
            kind, _, value = entry.partition(":")
            value = value.strip()
            if kind == "id" and is_id(value):
                user_ids.append(value)
            elif kind == "group" and value:
                groups.append(value)
            else:
                usernames.append(entry.strip())
        return cls(usernames=tuple(usernames), user_ids=tuple(user_ids), groups=tuple(groups))
