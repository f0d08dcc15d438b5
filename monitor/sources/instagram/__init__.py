"""Instagram professional account adapter: media with their comments and replies.

Each media is a thread; a comment by anyone but the account opens an item, the account's
reply (recognised by its username or IG user id) answers it, as on a Facebook Page.
"""

from monitor.sources.instagram._source import InstagramSource
from monitor.sources.instagram._wire import COMMENT_FIELDS, MEDIA_FIELDS, REPLY_FIELDS

__all__ = ["COMMENT_FIELDS", "MEDIA_FIELDS", "REPLY_FIELDS", "InstagramSource"]
