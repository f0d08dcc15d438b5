"""The interaction rule of open networks: which public posts wait for the brand's answer.

On a Page or a forum every consumer message is addressed to the brand. In a public hashtag
most posts are not: vacancies, the brand's own announcements, people talking among themselves.
The rule (docs/campaigns.md) sorts each post into one of:

- brand: by the brand's account or a listed moderator account. It answers items.
- broadcast: by a listed partner (a vacancy, a re-announcement). Counted; not an item.
- interaction: mentions the brand's account, replies to a brand post, or is a hashtag post
  that asks something. Opens an item, with the usual SLA clock and alerts.
- chatter: any other hashtag post. Counted; not an item.

Each switch of [sources.interaction] turns one way in off; the order above decides ties (a
partner's question is a broadcast; a brand post that asks something is the brand's).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.config import InteractionConfig
from monitor.domain import KIND_BRAND as BRAND
from monitor.domain import KIND_BROADCAST as BROADCAST
from monitor.domain import KIND_CHATTER as CHATTER
from monitor.domain import KIND_INTERACTION as INTERACTION
from monitor.domain import tag_key as tag_key  # the sources import it from here


def account_key(account: str) -> str:
    """An account as compared: without the leading "@", in lower case."""
    return account.strip().lstrip("@").lower()


@dataclass(frozen=True, kw_only=True)
class Post:
    """What the rule needs to know of one post, in the same terms on every network."""

    author: str  # the account, as account_key gives it
    text: str  # plain text (HTML already stripped)
    tags: frozenset[str]  # all hashtags of the post, as tag_key gives them
    mentions_brand: bool  # names the brand's account
    replies_to_brand: bool  # a reply to a post by the brand's account or a moderator account


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What the rule made of a post: its kind, and the watched tags it carries."""

    kind: str
    tags: tuple[str, ...]

    @property
    def is_brand(self) -> bool:
        """Written for the brand: it answers the items before it."""
        return self.kind == BRAND


class InteractionRule:
    """Sorts posts into brand, broadcast, interaction and chatter (see the module docstring)."""

    def __init__(
        self,
        *,
        brand_accounts: Iterable[str],
        partners: Iterable[str],
        hashtags: Iterable[str],
        config: InteractionConfig,
    ) -> None:
        self.brand_accounts = frozenset(map(account_key, brand_accounts))
        self.partners = frozenset(map(account_key, partners))
        self.hashtags = frozenset(map(tag_key, hashtags))
        self.config = config
        words = [re.escape(w.strip()) for w in config.question_words if w.strip()]
        self._question_words = (
            re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE)
            if words
            else None
        )

    def is_brand_account(self, account: str) -> bool:
        """The brand's own account or a listed moderator account."""
        return account_key(account) in self.brand_accounts

    def asks(self, text: str) -> bool:
        """The text asks something: a question mark or one of the configured question words."""
        if "?" in text or "？" in text:  # the full-width mark asks too
            return True
        return self._question_words is not None and self._question_words.search(text) is not None

    def classify(self, post: Post) -> Verdict:
        """The post's kind under this rule, with the watched hashtags it carries."""
        watched = tuple(sorted(post.tags & self.hashtags))
        author = account_key(post.author)
        if author in self.brand_accounts:
            kind = BRAND
        elif author in self.partners:
            kind = BROADCAST
        elif self._is_interaction(post, bool(watched)):
            kind = INTERACTION
        else:
            kind = CHATTER
        return Verdict(kind=kind, tags=watched)

    def _is_interaction(self, post: Post, in_watched_tag: bool) -> bool:
        config = self.config
        if config.mentions and post.mentions_brand:
            return True
        if config.replies and post.replies_to_brand:
            return True
        return config.questions and in_watched_tag and self.asks(post.text)
