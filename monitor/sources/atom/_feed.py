"""Reading a phpBB Atom feed: its entries' post and topic ids, authors, times and text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from html.parser import HTMLParser
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

from monitor.sources.wire import parse_time

ATOM = "{http://www.w3.org/2005/Atom}"

_DOCTYPE = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)

# What may precede the root element: a BOM, white space, the XML declaration, PIs, comments.
_PROLOG = re.compile(rb"^(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)

# phpBB appends "<p>Statistics: Posted by ... — date</p><hr />" (the label is translated, the
# U+2014 separator is not) to every entry's content; it is not part of the post.
_STATISTICS = re.compile(
    r"(?:<p>(?:(?!</?p[\s>]).)*\u2014(?:(?!</?p[\s>]).)*</p>)?\s*<hr\s*/?>\s*$",
    re.DOTALL | re.IGNORECASE,
)

_FRAGMENT_POST = re.compile(r"^p(\d+)$")


class FeedError(ValueError):
    """A response body that is not a usable Atom feed."""


@dataclass(frozen=True, kw_only=True)
class FeedEntry:
    """One `<entry>` of a phpBB post feed, as far as it could be read."""

    post_id: int | None
    topic_id: int | None
    author: str | None
    html: str
    published: datetime | None
    updated: datetime | None
    link: str | None


def parse_feed(raw: bytes) -> list[FeedEntry]:
    """The entries of a phpBB Atom feed; FeedError for anything that is not one."""
    # xml.etree expands internal entities (defusedxml is not available): a document with a
    # DOCTYPE or ENTITY declaration is refused before parsing, so no "billion laughs" can
    # expand. phpBB never sends one; an HTML page (proxy, captive portal) usually does.
    prolog = _PROLOG.match(raw)
    if _DOCTYPE.match(raw, prolog.end() if prolog else 0):
        raise FeedError("refusing a document with a DOCTYPE/ENTITY declaration (not a feed)")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as err:
        raise FeedError(f"not well-formed XML (malformed or truncated): {err}") from err
    if root.tag != f"{ATOM}feed":
        raise FeedError(f"not an Atom feed (root element {root.tag!r})")
    return [_entry(element) for element in root.iter(f"{ATOM}entry")]


def _entry(element: ET.Element) -> FeedEntry:
    link_element = element.find(f"{ATOM}link")
    link = link_element.get("href") if link_element is not None else None
    post_id, topic_id = _post_and_topic(link)
    if post_id is None:
        post_id, topic_id = _post_and_topic(element.findtext(f"{ATOM}id"))
    content = element.find(f"{ATOM}content")
    if content is None:
        content = element.find(f"{ATOM}summary")
    author = element.findtext(f"{ATOM}author/{ATOM}name")
    return FeedEntry(
        post_id=post_id,
        topic_id=topic_id,
        # phpBB stores user names HTML-escaped ("Tom &amp; Jerry") and prints them raw.
        author=unescape(author.strip()) if author and author.strip() else None,
        html=(content.text or "") if content is not None else "",
        published=feed_time(element.findtext(f"{ATOM}published")),
        updated=feed_time(element.findtext(f"{ATOM}updated")),
        link=link,
    )


def _post_and_topic(url: str | None) -> tuple[int | None, int | None]:
    """(post id, topic id) from `viewtopic.php?t=1&p=2#p2`, `?p=2#p2` or a `#p2` fragment."""
    if not url:
        return None, None
    parts = urlsplit(url.strip())
    query = parse_qs(parts.query)
    post = _first_int(query.get("p"))
    if post is None and (match := _FRAGMENT_POST.match(parts.fragment)):
        post = int(match.group(1))
    return post, _first_int(query.get("t"))


def feed_time(value: object) -> datetime | None:
    """An RFC 3339 time in any offset ("2026-11-16T20:05:00+01:00", phpBB may add a space)."""
    return parse_time(value.strip() if isinstance(value, str) else value)


def _first_int(values: list[str] | None) -> int | None:
    if values and values[0].isdigit():
        return int(values[0])
    return None


class _TextExtractor(HTMLParser):
    """Plain text of a post: line breaks for <br> and blocks, smilies as their alt text."""

    BLOCKS: ClassVar[frozenset[str]] = frozenset(
        {"p", "div", "blockquote", "li", "ul", "ol", "tr", "table", "pre", "dd", "dt", "dl"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "cite", "hr"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "br" or tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.parts.append(alt)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """A feed entry's HTML content as plain text, without phpBB's statistics footer."""
    extractor = _TextExtractor()
    extractor.feed(_STATISTICS.sub("", fragment))
    extractor.close()
    lines = [" ".join(line.split()) for line in "".join(extractor.parts).split("\n")]
    text: list[str] = []
    for line in lines:
        if line or (text and text[-1]):
            text.append(line)
    return "\n".join(text).strip()
