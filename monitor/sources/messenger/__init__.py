"""Messenger adapter: a Page's conversations (Graph API) into domain messages and our errors."""

# A conversation is a thread keyed by the person's page-scoped id (PSID): webhook deliveries
# name the person, never the conversation, so polls and deliveries meet on the same thread.

from monitor.sources.messenger._source import MessengerSource
from monitor.sources.messenger._webhook import parse_messaging
from monitor.sources.messenger._wire import MESSAGE_FIELDS, messenger_error

__all__ = [
    "MESSAGE_FIELDS",
    "MessengerSource",
    "messenger_error",
    "parse_messaging",
]
