"""Topic lists ([LIST], [MORE], [PIN]), topics ([SHOW], [VIEW]) and posts ([POSTS], [POST])."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from monitor.simulator.discourse.errors import (
    INVALID_CREDENTIALS,
    NOT_FOUND,
    _Answer,
    _html_page,
    _json,
    _Reply,
    _topic_failure,
)
from monitor.simulator.discourse.model import (
    _ANONYMOUS,
    _AUTHOR_FIELDS,
    CHUNK_SIZE,
    HIDDEN_TEXT,
    SMALL_ACTION,
    WHISPER,
    WITHDRAWN,
    _basic_user,
    _escape,
    _Post,
    _Topic,
    _User,
    _wire,
)
from monitor.simulator.discourse.store import DiscourseStore


class DiscourseTopics(DiscourseStore):
    """The read endpoints' answers, rendered for the viewer the request authenticates as."""

    # --- topic lists --------------------------------------------------------------------------

    def _listed(self, topic: _Topic) -> bool:
        """Whether a topic appears in the lists: not deleted, not out of sight [TOPIC]."""
        return topic.deleted_at is None and self._failing_topics.get(topic.id) not in (403, 404)

    async def _latest(self, request: web.Request) -> web.StreamResponse:
        if not request.path.endswith(".json") and not _wants_json(request):
            return _html_page(self.title)
        topics = [t for t in self._topics.values() if self._listed(t)]
        return self._topic_list(request, topics, "/latest", {"no_definitions": "true"})

    async def _category(self, request: web.Request) -> web.StreamResponse:
        """/c/{id}, /c/{slug}/{id}, each optionally + /l/latest, with or without .json."""
        path = request.match_info["path"]
        is_json = path.endswith(".json")
        path = path.removesuffix(".json").removesuffix("/l/latest")
        parts = path.split("/")
        if not parts[-1].isdigit() or len(parts) > 2:
            raise _Answer(404, "not_found", NOT_FOUND)
        category = self._categories.get(int(parts[-1]))
        if category is None or (len(parts) == 2 and parts[0] != category.slug):
            raise _Answer(404, "not_found", NOT_FOUND)
        if not is_json and not _wants_json(request):
            return _html_page(self.title)
        topics = [
            t for t in self._topics.values() if self._listed(t) and t.category_id == category.id
        ]
        return self._topic_list(request, topics, f"/c/{category.slug}/{category.id}", {})

    def _topic_list(
        self,
        request: web.Request,
        topics: list[_Topic],
        path: str,
        extra: Mapping[str, str],
    ) -> web.Response:
        try:
            page = int(request.query.get("page", "0") or 0)
        except ValueError as err:
            raise _Answer(400, "invalid_parameters", "page is invalid") from err
        if page < 0:
            raise _Answer(400, "invalid_parameters", "page is invalid")
        by_bump = sorted(topics, key=lambda t: (t.bumped_at, t.id), reverse=True)
        pinned = [t for t in by_bump if t.pinned]
        unpinned = [t for t in by_bump if not t.pinned]
        # [PIN] pinned topics lead page 0 and are not repeated further on.
        if page == 0:
            chosen = (pinned + unpinned)[: self.per_page]
        else:
            start = page * self.per_page - len(pinned)
            chosen = unpinned[start : start + self.per_page]
        users: dict[int, _User] = {}
        items = [self._list_item(topic, users) for topic in chosen]
        topic_list: dict[str, Any] = {"can_create_topic": True, "per_page": self.per_page}
        if len(chosen) == self.per_page:  # [MORE]
            query = {**extra, "page": str(page + 1)}
            topic_list["more_topics_url"] = f"{path}?" + "&".join(
                f"{k}={v}" for k, v in query.items()
            )
        topic_list["topics"] = items
        body = {
            "users": [_basic_user(u) for u in users.values()],
            "primary_groups": [],
            "flair_groups": [],
            "topic_list": topic_list,
        }
        return _json(body)

    def _list_item(self, topic: _Topic, users: dict[int, _User]) -> dict[str, Any]:
        posts = self._regular_posts(topic.id)
        last = posts[-1] if posts else None
        posters = []
        for uid in dict.fromkeys(p.user_id for p in posts):
            user = self._users[uid]
            users[uid] = user
            posters.append(
                {
                    "extras": None,
                    "description": "Original Poster" if uid == topic.user_id else "Frequent Poster",
                    "user_id": uid,
                    "primary_group_id": None,
                }
            )
        return {
            "id": topic.id,
            "title": topic.title,
            "fancy_title": topic.title,
            "slug": topic.slug,
            "posts_count": len(posts),
            "reply_count": max(0, len(posts) - 1),
            "highest_post_number": self._highest_post_number(topic.id),
            "image_url": None,
            "created_at": _wire(topic.created_at),
            "last_posted_at": _wire(last.created_at) if last else None,
            "bumped": topic.bumped_at > topic.created_at,
            "bumped_at": _wire(topic.bumped_at),
            "archetype": "regular",
            "unseen": False,
            "pinned": topic.pinned,
            "unpinned": None,
            "visible": True,
            "closed": topic.closed,
            "archived": False,
            "bookmarked": None,
            "liked": None,
            "views": 0,
            "like_count": 0,
            "has_summary": False,
            "last_poster_username": self._users[last.user_id].username if last else None,
            "category_id": topic.category_id,
            "pinned_globally": False,
            "featured_link": None,
            "posters": posters,
        }

    # --- topics and posts ---------------------------------------------------------------------

    async def _topic_show(self, request: web.Request) -> web.StreamResponse:
        topic = self._visible_topic(request)
        if not request.path.endswith(".json") and not _wants_json(request):
            return _html_page(topic.title)
        viewer = self._viewer(request)
        visible = self._stream(topic, viewer)
        chunk = visible[:CHUNK_SIZE]
        has_deleted = any(
            p.deleted_at is not None and p.post_number > 1 for p in self._all_posts(topic.id)
        )
        regular = self._regular_posts(topic.id)
        body: dict[str, Any] = {
            "post_stream": {
                "posts": [self._serialize(p, topic, viewer) for p in chunk],
                "stream": [p.id for p in visible],
            },
            "timeline_lookup": [],
            "suggested_topics": [],
            "tags": [],
            "tags_descriptions": {},
            "id": topic.id,
            "title": topic.title,
            "fancy_title": topic.title,
            "posts_count": len(regular),
            "created_at": _wire(topic.created_at),
            "views": 0,
            "reply_count": max(0, len(regular) - 1),
            "like_count": 0,
            "last_posted_at": _wire(regular[-1].created_at) if regular else None,
            "visible": True,
            "closed": topic.closed,
            "archived": False,
            "has_summary": False,
            "archetype": "regular",
            "slug": topic.slug,
            "category_id": topic.category_id,
            "word_count": sum(len(p.raw.split()) for p in regular),
            "deleted_at": _wire(topic.deleted_at) if topic.deleted_at else None,
            "user_id": topic.user_id,
            "featured_link": None,
            "pinned_globally": False,
            "pinned_at": None,
            "pinned_until": None,
            "image_url": None,
            "slow_mode_seconds": 0,
            "draft": None,
            "draft_key": f"topic_{topic.id}",
            "draft_sequence": 0,
            "unpinned": None,
            "pinned": topic.pinned,
            "current_post_number": 1,
            "highest_post_number": self._highest_post_number(topic.id),
            "deleted_by": None,
            "has_deleted": has_deleted and viewer.staff,
            "actions_summary": [],
            "chunk_size": CHUNK_SIZE,
            "bookmarked": False,
        }
        return _json(body)

    async def _topic_posts(self, request: web.Request) -> web.StreamResponse:
        topic = self._visible_topic(request)
        viewer = self._viewer(request)
        wanted: set[int] = set()
        for value in request.query.getall("post_ids[]", []):
            if not value.isdigit():
                raise _Answer(400, "invalid_parameters", "post_ids is invalid")
            wanted.add(int(value))
        if not wanted:
            raise _Answer(400, "invalid_parameters", "param is missing or the value is empty")
        # [VIEW] filter_posts_by_ids: by id, in sort order; staff also get deleted posts.
        posts = [
            p
            for p in self._all_posts(topic.id)
            if p.id in wanted
            and self._type_visible(p, viewer)
            and (p.deleted_at is None or viewer.staff)
        ]
        body = {
            "post_stream": {"posts": [self._serialize(p, topic, viewer) for p in posts]},
            "id": topic.id,
        }
        return _json(body)

    def _visible_topic(self, request: web.Request) -> _Topic:
        topic = self._topics.get(int(request.match_info["topic_id"]))
        viewer = self._viewer(request)
        if topic is None or (topic.deleted_at is not None and not viewer.staff):
            raise _Answer(404, "not_found", NOT_FOUND)
        status = self._failing_topics.get(topic.id)
        if status is not None:
            raise _Reply(_topic_failure(status))
        return topic

    def _viewer(self, request: web.Request) -> _User:
        if "Api-Key" not in request.headers:
            return _ANONYMOUS
        user = self._user_by_name(request.headers.get("Api-Username", ""))
        if user is None:  # _authenticate already refused this
            raise _Answer(403, "invalid_access", INVALID_CREDENTIALS)
        return user

    def _stream(self, topic: _Topic, viewer: _User) -> list[_Post]:
        """[VIEW] the posts a viewer sees in the stream, in order."""
        return [
            p
            for p in self._all_posts(topic.id)
            if self._type_visible(p, viewer) and (p.deleted_at is None or p.post_number == 1)
        ]

    @staticmethod
    def _type_visible(post: _Post, viewer: _User) -> bool:
        return post.post_type != WHISPER or viewer.staff or post.user_id == viewer.id

    def _serialize(self, post: _Post, topic: _Topic, viewer: _User) -> dict[str, Any]:
        """[POST] one post as PostSerializer renders it for `viewer`."""
        user = self._users[post.user_id]
        cooked = f"<p>{_escape(WITHDRAWN if post.user_deleted else post.raw)}</p>"
        if post.post_type == SMALL_ACTION:
            cooked = ""
        # [POST] BasicPostSerializer#cooked_hidden: only staff read a hidden post's text.
        cooked_hidden = post.hidden and not viewer.staff
        if cooked_hidden:
            cooked = f"<p>{HIDDEN_TEXT}</p>"
        reply_to = (
            self._posts_by_number(topic.id).get(post.reply_to_post_number)
            if post.reply_to_post_number
            else None
        )
        body: dict[str, Any] = {
            "id": post.id,
            "name": user.name,
            "username": user.username,
            "avatar_template": f"/letter_avatar_proxy/v4/letter/{user.username[0]}/{{size}}.png",
            "created_at": _wire(post.created_at),
            "cooked": cooked,
            "post_number": post.post_number,
            "post_type": post.post_type,
            "posts_count": len(self._regular_posts(topic.id)),
            "updated_at": _wire(post.updated_at),
            "reply_count": sum(
                1
                for p in self._all_posts(topic.id)
                if p.reply_to_post_number == post.post_number and p.deleted_at is None
            ),
            "reply_to_post_number": post.reply_to_post_number,
            "quote_count": 0,
            "incoming_link_count": 0,
            "reads": 1,
            "readers_count": 0,
            "score": 0,
            "yours": viewer.id == post.user_id,
            "topic_id": topic.id,
            "topic_slug": topic.slug,
            "display_username": user.name,
            "primary_group_name": user.primary_group,
            "flair_name": None,
            "flair_url": None,
            "flair_bg_color": None,
            "flair_color": None,
            "flair_group_id": None,
            "badges_granted": [],
            "version": post.version,
            "can_edit": viewer.staff,
            "can_delete": viewer.staff,
            "can_recover": viewer.staff,
            "can_see_hidden_post": viewer.staff,
            "can_wiki": viewer.staff,
            "read": True,
            "user_title": None,
            "bookmarked": False,
            "actions_summary": [],
            "moderator": user.moderator,
            "admin": user.admin,
            "staff": user.staff,
            "user_id": user.id,
            "hidden": post.hidden,
            "trust_level": user.trust_level,
            "deleted_at": _wire(post.deleted_at) if post.deleted_at else None,
            "user_deleted": post.user_deleted,
            "edit_reason": None,
            "can_view_edit_history": True,
            "wiki": False,
            "reviewable_id": 0,
            "reviewable_score_count": 0,
            "reviewable_score_pending_count": 0,
            "mentioned_users": [],
        }
        if post.hidden:
            body["hidden_reason_id"] = 1  # flag_threshold_reached
        if cooked_hidden:
            body["cooked_hidden"] = True
        if reply_to is not None:
            replied = self._users[reply_to.user_id]
            body["reply_to_user"] = {
                "username": replied.username,
                "name": replied.name,
                "avatar_template": body["avatar_template"],
            }
        if post.action_code:
            body["action_code"] = post.action_code
        if post.id in self._orphans:
            body.update(dict.fromkeys(_AUTHOR_FIELDS))
            body.update(moderator=False, admin=False, staff=False)
        for key in self._dropped_fields.get(post.id, ()):
            body.pop(key, None)
        return body


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")
