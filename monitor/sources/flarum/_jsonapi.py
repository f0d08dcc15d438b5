"""Flarum's JSON:API documents into our types: threads, authors, post text, mentions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from yarl import URL

from monitor.domain import Skipped
from monitor.sources.base import Refused, TransientError
from monitor.sources.moderators import ModeratorEntries
from monitor.sources.wire import as_list, parse_time

# Flarum's built-in Admins (1) and Mods (4) groups: what "group:staff" means on Flarum, which
# has no staff flag of its own.
STAFF_GROUP_IDS = frozenset({"1", "4"})

# A post mention: `<a href=... class="PostMention" data-id="123">`, or a <span> once the
# mentioned post is gone (flarum/mentions ConfigureMentions).
_TAG = re.compile(r"<(?:a|span)\b[^>]*>", re.IGNORECASE)

_MENTION_CLASS = re.compile(r'\bclass="[^"]*\bPostMention\b')

_DATA_ID = re.compile(r'\bdata-id="(\d+)"')

# The source form (`content`, shown to editors): `@"Name"#p123`; older installs `@name#123`.
_SOURCE_MENTION = re.compile(r'@["“][^"”]*["”]#p(\d+)|\B@[A-Za-z0-9_-]+#(\d+)')


@dataclass(frozen=True, kw_only=True)
class Moderators:
    """Who answers for the brand, parsed from the `moderators` config entries."""

    usernames: frozenset[str] = frozenset()
    user_ids: frozenset[str] = frozenset()
    group_names: frozenset[str] = frozenset()
    group_ids: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Moderators:
        """ "alice" (username), "id:42" (user id), "group:support" / "group:4" / "group:staff"."""
        sorted_entries = ModeratorEntries.sort(entries)
        group_names: set[str] = set()
        group_ids: set[str] = set()
        for value in sorted_entries.groups:
            if value.isdigit():
                group_ids.add(value)
            elif value.casefold() == "staff":
                group_ids.update(STAFF_GROUP_IDS)
            else:
                group_names.add(value.casefold())
        return cls(
            usernames=frozenset(name.casefold() for name in sorted_entries.usernames),
            user_ids=frozenset(sorted_entries.user_ids),
            group_names=frozenset(group_names),
            group_ids=frozenset(group_ids),
        )

    def match(self, user_id: str | None, username: str | None, groups: Iterable[Group]) -> bool:
        """Whether an author is one of the brand's moderators."""
        if user_id is not None and user_id in self.user_ids:
            return True
        if username is not None and username.casefold() in self.usernames:
            return True
        for group in groups:
            if group.id in self.group_ids:
                return True
            if any(n and n.casefold() in self.group_names for n in (group.singular, group.plural)):
                return True
        return False


@dataclass(frozen=True, kw_only=True)
class Group:
    id: str
    singular: str | None
    plural: str | None


@dataclass(kw_only=True)
class Thread:
    """One discussion as read: its posts and the users and groups they reference."""

    discussion_id: str
    slug: str | None
    hidden: bool
    # Ids of every post the actor may see, from one query: what "complete" is checked against.
    post_ids: list[str]
    posts: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    resources: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    without_id: int = 0  # posts served without an id: they cannot be placed

    def add(self, body: Mapping[str, Any], data: Iterable[Any] = ()) -> None:
        """Index the posts of `data` and the `included` resources of a document."""
        for resource in [*data, *as_list(body.get("included"))]:
            if not isinstance(resource, dict):
                continue
            kind, ident = resource.get("type"), resource.get("id")
            if kind == "posts" and not isinstance(ident, str | int):
                self.without_id += 1
            if not isinstance(kind, str) or not isinstance(ident, str | int):
                continue
            self.resources.setdefault((kind, str(ident)), resource)
            if kind == "posts":
                self.posts.setdefault(str(ident), resource)


def new_thread(discussion_id: str, body: Mapping[str, Any]) -> Thread:
    """The discussion document's thread; Refused (malformed) without a discussion or post ids."""
    data = body.get("data")
    relationships = data.get("relationships") if isinstance(data, dict) else None
    posts_rel = relationships.get("posts") if isinstance(relationships, dict) else None
    post_refs = posts_rel.get("data") if isinstance(posts_rel, dict) else None
    if not isinstance(data, dict) or data.get("type") != "discussions":
        what = "a response without the discussion"
    elif not isinstance(post_refs, list):
        what = "a discussion without its post ids"
    else:
        attributes = attributes_of(data)
        slug = attributes.get("slug")
        thread = Thread(
            discussion_id=discussion_id,
            slug=slug if isinstance(slug, str) and slug else None,
            hidden=attributes.get("isHidden") is True,
            post_ids=[str(r["id"]) for r in post_refs if isinstance(r, dict) and "id" in r],
        )
        thread.add(body)
        return thread
    detail = f"discussion {discussion_id}: Flarum served {what}"
    raise Refused(Skipped(reason="malformed", detail=detail))


def attributes_of(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    attributes = resource.get("attributes")
    return attributes if isinstance(attributes, dict) else {}


def relation_data(resource: Mapping[str, Any], name: str) -> Any:
    relationships = resource.get("relationships")
    relation = relationships.get(name) if isinstance(relationships, dict) else None
    return relation.get("data") if isinstance(relation, dict) else None


def error_code(body: Any) -> str:
    """The `code` of a JSON:API error document's first error, or ""."""
    first = next(iter(as_list(body.get("errors") if isinstance(body, dict) else None)), None)
    return str(first.get("code") or "") if isinstance(first, dict) else ""


def data_list(body: Mapping[str, Any], url: str) -> list[Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise TransientError(f"GET {URL(url).with_query(None)}: response without a data list")
    return data


class _TextExtractor(HTMLParser):
    """The text of rendered post HTML, one line per block element."""

    _BLOCKS = frozenset(
        {"p", "br", "div", "li", "blockquote", "pre", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """A block element starts a new line."""
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        """A block element ends its line."""
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        """Text between tags."""
        self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Plain text of a post's contentHtml (tags dropped, entities decoded, blank lines gone)."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).splitlines())
    return "\n".join(line for line in lines if line)


def mentioned_post_id(content_html: str | None, content: str | None) -> str | None:
    """The id of the first post a comment mentions (its reply target), if any."""
    if isinstance(content_html, str):
        for tag in _TAG.finditer(content_html):
            if _MENTION_CLASS.search(tag[0]):
                found = _DATA_ID.search(tag[0])
                if found:
                    return found[1]
    if isinstance(content, str):
        source = _SOURCE_MENTION.search(content)
        if source:
            return source[1] or source[2]
    return None


def mentioned_post(attributes: Mapping[str, Any]) -> str | None:
    return mentioned_post_id(attributes.get("contentHtml"), attributes.get("content"))


def post_text(attributes: Mapping[str, Any]) -> str:
    markup, source = attributes.get("contentHtml"), attributes.get("content")
    if attributes.get("renderFailed") is True and isinstance(source, str):
        return source  # contentHtml then holds Flarum's "render failed" message
    if isinstance(markup, str):
        return html_to_text(markup)
    return source if isinstance(source, str) else ""


def parse_flarum_time(value: Any) -> datetime | None:
    """Parse a Flarum date (`2022-01-01T10:20:30+00:00`, RFC 3339) into aware UTC."""
    return parse_time(value, naive_is_utc=True)
