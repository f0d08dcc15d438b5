"""Discourse adapter: topic lists, topics and posts into domain messages and our error tree."""

from monitor.sources.discourse._source import (
    DEFAULT_RATE_LIMIT_WAIT,
    MAX_LIST_PAGES,
    POSTS_PER_REQUEST,
    DiscourseSource,
)
from monitor.sources.discourse._state import ListCursor
from monitor.sources.discourse._wire import (
    REGULAR_POST,
    ListedTopic,
    Moderators,
    cooked_text,
    parse_discourse_time,
)

__all__ = [
    "DEFAULT_RATE_LIMIT_WAIT",
    "MAX_LIST_PAGES",
    "POSTS_PER_REQUEST",
    "REGULAR_POST",
    "DiscourseSource",
    "ListCursor",
    "ListedTopic",
    "Moderators",
    "cooked_text",
    "parse_discourse_time",
]
