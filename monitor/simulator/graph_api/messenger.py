"""The fake Graph API's Messenger part: a Page's conversations, their messages, unsends.

Sources of each behaviour, cited by tag next to the code:
[CONV]   Graph API reference "Page Conversations" (developers.facebook.com/docs/graph-api/
         reference/page/conversations) and Messenger Platform "Conversations API"
         (developers.facebook.com/docs/messenger-platform/conversations): GET
         /{page-id}/conversations?platform=messenger, newest `updated_time` first, fields
         `participants`, `updated_time`, `messages{...}`; `user_id=PSID` finds one person's
         conversation; conversation ids look like `t_10224...`.
[MSG]    Same guide, "Get Messages": GET /{conversation-id}/messages, newest first; default
         fields `id`, `created_time`; `message`, `from{name,email,id}`, `to{data}` on request;
         `from.email` is `{psid}@facebook.com`; message ids look like `m_...`.
[CURSOR] Graph API "Paginated Results": `paging.cursors.{before,after}`, absolute `next`, the
         last page has cursors but no `next` (shared with the Page fake, see __init__).
[NESTED] A nested edge's `next` carries limit and cursor only (see the Page fake's [NESTED]).
[PERM]   A token without `pages_messaging`: HTTP 400, OAuthException code 230 "(#230) Requires
         pages_messaging permission to manage the object" (Messenger Platform "Error Codes"
         table: 230, "Requires pages_messaging permission to manage the object").
[HOOK]   Messenger Platform webhooks, `messages` and `message_echoes` fields: `{"object":
         "page", "entry": [{"id", "time", "messaging": [{"sender": {"id"}, "recipient": {"id"},
         "timestamp": ms, "message": {"mid", "text", "is_echo"?}}]}]}`; an unsent message
         arrives as `message: {"mid", "is_deleted": true}` (Instagram Messaging's documented
         unsend event; LiveHelperChat discussion #2178 reports the same for Messenger), and
         vanishes from the conversation's messages.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.simulator.graph_api.errors import GraphError, _GraphFailure, _invalid_parameter
from monitor.simulator.graph_api.model import _Call, _limit, _link, _unix, _wire_time
from monitor.simulator.graph_api.reads import GraphReads

PERMISSION_MISSING = GraphError(  # [PERM]
    code=230, message="(#230) Requires pages_messaging permission to manage the object"
)
MESSAGE_DEFAULT_FIELDS = ("id", "created_time")  # [MSG]


@dataclass(frozen=True, kw_only=True)
class _Sent:
    """One Messenger message as the fake stores it."""

    id: str
    created: int
    number: int
    text: str
    from_page: bool


@dataclass(kw_only=True)
class _Conversation:
    """A Page's conversation with one person (PSID)."""

    id: str
    page_id: str
    psid: str
    name: str
    messages: list[_Sent] = field(default_factory=list)

    @property
    def updated(self) -> int:
        """Its `updated_time`: the newest message's creation."""
        return max((m.created for m in self.messages), default=0)


def _fields_of(spec: str) -> dict[str, str]:
    """`a,messages.limit(5){b,c}` -> {"a": "", "messages": ".limit(5){b,c}"} (top level only)."""
    found: dict[str, str] = {}
    depth, start = 0, 0
    for index, char in enumerate(spec + ","):
        if char in "{(":
            depth += 1
        elif char in "})":
            depth -= 1
        elif char == "," and depth == 0:
            part = spec[start:index].strip()
            if part:
                name = part.split(".", 1)[0].split("{", 1)[0]
                found[name] = part[len(name) :]
            start = index + 1
    return found


def _nested(rest: str) -> tuple[int | None, str]:
    """`.limit(5){b,c}` -> (5, "b,c")."""
    limit = None
    if rest.startswith(".limit(") and ")" in rest:
        inside = rest[len(".limit(") : rest.index(")")]
        limit = int(inside) if inside.isdigit() else None
        rest = rest[rest.index(")") + 1 :]
    return limit, rest[1:-1] if rest.startswith("{") and rest.endswith("}") else ""


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"i:{index}".encode()).decode().rstrip("=")


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return int(raw.removeprefix("i:"))
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise _invalid_parameter() from err


class MessengerReads(GraphReads):
    """Conversations and messages of the fake's Pages, and the scripting methods for them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token_scopes = [*self.token_scopes, "pages_messaging"]
        self._conversations: dict[str, _Conversation] = {}

    # --- scripting ------------------------------------------------------------------------

    def add_conversation(self, user: tuple[str, str], *, page_id: str | None = None) -> str:
        """Open a conversation of `user` (PSID, name) with a Page; returns its `t_` id."""
        conversation_id = f"t_{self._take_number()}"
        page = page_id or self.page_id
        self._conversations[conversation_id] = _Conversation(
            id=conversation_id, page_id=page, psid=user[0], name=user[1]
        )
        return conversation_id

    def add_message(
        self, conversation_id: str, *, created_time: datetime, message: str, from_page: bool
    ) -> str:
        """A message in a conversation, by the person or (from_page) by the Page."""
        number = self._take_number()
        sent = _Sent(
            id=f"m_{number}",
            created=_unix(created_time),
            number=number,
            text=message,
            from_page=from_page,
        )
        self._conversations[conversation_id].messages.append(sent)
        return sent.id

    def unsend(self, message_id: str) -> None:
        """The sender removes a message: it vanishes from its conversation ([HOOK])."""
        for conversation in self._conversations.values():
            conversation.messages = [m for m in conversation.messages if m.id != message_id]

    def messaging_delivery(self, *message_ids: str, deleted: bool = False) -> dict[str, Any]:
        """The `messages` webhook delivery for these messages ([HOOK]), one entry per Page."""
        entries: dict[str, list[dict[str, Any]]] = {}
        for conversation in self._conversations.values():
            for sent in conversation.messages:
                if sent.id in message_ids:
                    entries.setdefault(conversation.page_id, []).append(
                        self._event(conversation, sent, deleted)
                    )
        return {
            "object": "page",
            "entry": [
                {"id": page, "time": events[-1]["timestamp"], "messaging": events}
                for page, events in entries.items()
            ],
        }

    def _event(self, conversation: _Conversation, sent: _Sent, deleted: bool) -> dict[str, Any]:
        page, person = {"id": conversation.page_id}, {"id": conversation.psid}
        message: dict[str, Any] = {"mid": sent.id}
        if deleted:
            message["is_deleted"] = True
        else:
            message["text"] = sent.text
            if sent.from_page:
                message["is_echo"] = True  # message_echoes: the Page's own replies
        return {
            "sender": page if sent.from_page else person,
            "recipient": person if sent.from_page else page,
            "timestamp": sent.created * 1000 + sent.number % 1000,
            "message": message,
        }

    # --- reads ----------------------------------------------------------------------------

    def _dispatch(self, call: _Call) -> dict[str, Any]:
        """Conversations and messages here; everything else as the Page fake answers it."""
        segments = call.segments
        if len(segments) == 2 and segments[1] in ("conversations", "messages"):
            self._check_token(call.token)
            self._check_proof(call.token, call.proof)
            if "pages_messaging" not in self.token_scopes:
                raise _GraphFailure(PERMISSION_MISSING)
            if segments[1] == "conversations":
                return self._list_conversations(call, segments[0])
            conversation = self._conversations.get(segments[0])
            if conversation is None:
                raise _GraphFailure(GraphError(code=100, subcode=33), segments[0])
            return self._messages(call, conversation, call.query.get("fields"), None)
        return super()._dispatch(call)

    def _list_conversations(self, call: _Call, page_id: str) -> dict[str, Any]:
        """[CONV]: newest updated first; `user_id` narrows it to one person."""
        page_id = self._usernames.get(page_id, page_id)
        if page_id not in self._pages:
            raise _GraphFailure(GraphError(code=100, subcode=33), page_id)
        if call.query.get("platform", "messenger") != "messenger":
            raise _invalid_parameter()
        user = call.query.get("user_id")
        found = sorted(
            (
                c
                for c in self._conversations.values()
                if c.page_id == page_id and c.messages and (user is None or c.psid == user)
            ),
            key=lambda c: (c.updated, c.id),
            reverse=True,
        )
        fields = _fields_of(call.query.get("fields", "id"))
        start, limit = _offset(call.query.get("after")), _limit(call.query)
        page = found[start : start + limit]
        data = [self._render_conversation(call, c, fields) for c in page]
        return self._paged(call, data, start, len(page), more=start + limit < len(found))

    def _render_conversation(
        self, call: _Call, conversation: _Conversation, fields: dict[str, str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "participants" in fields:
            out["participants"] = {
                "data": [
                    self._person(conversation.psid, conversation.name),
                    self._person(conversation.page_id, self._pages[conversation.page_id].name),
                ]
            }
        if "updated_time" in fields:
            out["updated_time"] = _wire_time(conversation.updated)
        if "messages" in fields:
            limit, sub = _nested(fields["messages"])
            edge = self._messages(call, conversation, sub or None, limit, nested=True)
            if edge["data"]:
                out["messages"] = edge
        out["id"] = conversation.id
        return out

    def _messages(
        self,
        call: _Call,
        conversation: _Conversation,
        spec: str | None,
        limit: int | None,
        *,
        nested: bool = False,
    ) -> dict[str, Any]:
        """[MSG]: newest first, cursor paging; a nested edge's `next` is its own edge's."""
        ordered = sorted(conversation.messages, key=lambda m: (m.created, m.number), reverse=True)
        wanted = _fields_of(spec) if spec else dict.fromkeys(MESSAGE_DEFAULT_FIELDS, "")
        size = limit or _limit(call.query)
        start = 0 if nested else _offset(call.query.get("after"))
        page = ordered[start : start + size]
        data = [self._render_message(conversation, sent, wanted) for sent in page]
        more = start + size < len(ordered)
        if not nested:
            return self._paged(call, data, start, len(page), more=more)
        body: dict[str, Any] = {"data": data}
        if page:
            paging: dict[str, Any] = {"cursors": {"before": _cursor(0), "after": _cursor(size)}}
            if more:  # [NESTED]: limit and cursor only
                base = call.url.with_path(f"/{call.version}/{conversation.id}/messages")
                paging["next"] = str(base.with_query({"limit": size, "after": _cursor(size)}))
            body["paging"] = paging
        return body

    def _render_message(
        self, conversation: _Conversation, sent: _Sent, fields: dict[str, str]
    ) -> dict[str, Any]:
        page = self._person(conversation.page_id, self._pages[conversation.page_id].name)
        person = self._person(conversation.psid, conversation.name)
        full: dict[str, Any] = {
            "id": sent.id,
            "created_time": _wire_time(sent.created),
            "message": sent.text,
            "from": page if sent.from_page else person,
            "to": {"data": [person if sent.from_page else page]},
        }
        return {key: value for key, value in full.items() if key in fields}

    @staticmethod
    def _person(person_id: str, name: str) -> dict[str, str]:
        return {"name": name, "email": f"{person_id}@facebook.com", "id": person_id}

    @staticmethod
    def _paged(
        call: _Call, data: list[dict[str, Any]], start: int, count: int, *, more: bool
    ) -> dict[str, Any]:
        """[CURSOR]: cursors on every non-empty page, `next` only while more follow."""
        body: dict[str, Any] = {"data": data}
        if not data:
            return body
        after = _cursor(start + count)
        paging: dict[str, Any] = {"cursors": {"before": _cursor(start), "after": after}}
        if more:
            paging["next"] = _link(call, drop=("before",), set_={"after": after})
        body["paging"] = paging
        return body
