"""Human durations: "90s", "60m" or "1h30m" read into seconds, and seconds written short."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: str | int | float) -> float:
    """Return seconds for a number (already seconds) or a string like "1h30m"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30m', not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().replace(" ", "")
        parts = _PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"invalid duration {value!r}; use e.g. '45s', '30m', '1h30m', '2d'")
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError("duration must be positive")
    return seconds


def human_duration(seconds: float) -> str:
    """12m30s, 5h10m, 2d03h: precise enough to read, short enough for a column."""
    total = round(abs(seconds))
    sign = "-" if seconds < 0 and total else ""
    if total < 60:
        return f"{sign}{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{sign}{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{sign}{days}d{hours:02d}h"


def spoken_duration(delta: timedelta) -> str:
    """A duration floored to its two largest units: "45 s", "22 min", "1 h 5 min", "2 d 3 h"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")
