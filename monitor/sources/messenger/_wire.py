"""Messenger's Graph JSON into our types: errors, conversations and messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.domain import Message
from monitor.sources.base import FatalError, SourceError
from monitor.sources.facebook import (
    GraphProduct,
    GraphUsage,
    graph_error,
    parse_graph_time,
)

MESSAGE_FIELDS = "id,message,from,created_time"
_NEW_TOKEN = (
    "generate a new Page access token with pages_messaging (and pages_manage_metadata for the"
    " webhook) and update access_token in the config"
)


class ConversationGone(FatalError):
    """Graph code 100/33: the conversation does not exist (or cannot be read)."""


# Graph's errors told in Messenger's words (permission: pages_messaging).
MESSENGER = GraphProduct(
    name="Facebook",
    new_token=_NEW_TOKEN,
    permission=(
        "Messenger needs the pages_messaging permission on the app and a token of someone who"
        " can message as the Page; " + _NEW_TOKEN
    ),
    missing=ConversationGone,
)


def messenger_error(
    error: Mapping[str, Any], status: int, usage: GraphUsage, where: str, token: str
) -> SourceError:
    """A Graph `{"error": {...}}` of a Messenger read in our error tree, in Messenger's words."""
    return graph_error(error, status, usage, where, token, MESSENGER)


def person_of(conversation: Mapping[str, Any], page_id: str) -> str | None:
    """The PSID of the conversation's other participant: our thread id."""
    participants = conversation.get("participants")
    data = participants.get("data") if isinstance(participants, dict) else None
    for participant in data if isinstance(data, list) else []:
        if isinstance(participant, dict):
            found = participant.get("id")
            if isinstance(found, str | int) and str(found) != page_id:
                return str(found)
    return None


def updated_of(conversation: Mapping[str, Any]) -> datetime | None:
    """The conversation's `updated_time`, None when unreadable."""
    value = conversation.get("updated_time")
    try:
        return parse_graph_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def message_of(raw: Mapping[str, Any], thread_id: str, page_id: str, seq: int) -> Message | None:
    """One message of a conversation; None when it lacks an id or a readable time."""
    message_id = raw.get("id")
    created = raw.get("created_time")
    if not isinstance(message_id, str) or not message_id or not isinstance(created, str):
        return None
    try:
        created_at = parse_graph_time(created)
    except ValueError:
        return None
    sender = raw.get("from")
    author_id = sender.get("id") if isinstance(sender, dict) else None
    name = sender.get("name") if isinstance(sender, dict) else None
    text = raw.get("message")
    return Message(
        platform_id=message_id,
        thread_id=thread_id,
        # A conversation has no root message: every message is in the thread, none replies
        # to another, so Messenger matches replies by thread.
        parent_id=None,
        author_id=str(author_id) if author_id is not None else None,
        author_name=name if isinstance(name, str) else None,
        text=text if isinstance(text, str) else "",  # store_text is applied when storing
        created_at=created_at,
        seq=seq,
        is_brand=author_id is not None and str(author_id) == page_id,
    )
