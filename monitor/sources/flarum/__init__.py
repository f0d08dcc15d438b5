"""Flarum adapter: JSON:API discussions and posts into domain messages and our error tree."""

from monitor.sources.flarum._jsonapi import (
    STAFF_GROUP_IDS,
    Moderators,
    html_to_text,
    mentioned_post_id,
    parse_flarum_time,
)
from monitor.sources.flarum._source import MAX_PAGE_SIZE, POST_INCLUDE, THREAD_INCLUDE, FlarumSource

__all__ = [
    "MAX_PAGE_SIZE",
    "POST_INCLUDE",
    "STAFF_GROUP_IDS",
    "THREAD_INCLUDE",
    "FlarumSource",
    "Moderators",
    "html_to_text",
    "mentioned_post_id",
    "parse_flarum_time",
]
