"""Mastodon adapter: the brand's mentions and replies, and the watched hashtags' timelines.

Every status is sorted by the interaction rule (monitor/sources/interaction.py); only
interactions open items, the brand's and moderators' replies answer them.
"""

from monitor.sources.mastodon._client import SCOPES
from monitor.sources.mastodon._source import MastodonSource

__all__ = ["SCOPES", "MastodonSource"]
