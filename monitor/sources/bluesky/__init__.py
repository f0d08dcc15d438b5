"""Bluesky adapter: the brand account's mentions, replies and quotes, and watched hashtags.

Posts come from `app.bsky.feed.searchPosts` (hashtags and terms), the account's
`app.bsky.notification.listNotifications`, the brand's and moderators' own posts through
`app.bsky.feed.getAuthorFeed` and, for threads with open items, `app.bsky.feed.getPostThread`.
A thread is the reply tree under its root post; the interaction rule
(monitor/sources/interaction.py) decides which posts open items.
"""

from monitor.sources.bluesky._source import BlueskySource

__all__ = ["BlueskySource"]
