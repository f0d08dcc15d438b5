"""JSON:API documents as Flarum's serializers build them ([SER-POST], [SER-DISC], [SER-USER])."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.simulator.flarum.model import (
    ADMIN_GROUP,
    ADMIN_USER,
    _date,
    _Discussion,
    _Group,
    _Post,
    _slugify,
    _Tag,
    _User,
)
from monitor.simulator.flarum.store import FlarumStore


class _Document:
    """One JSON:API document being built: primary data plus deduplicated `included`."""

    def __init__(self, forum: FlarumStore, actor: int | None) -> None:
        self._forum = forum
        self._actor = actor
        self._included: dict[tuple[str, str], dict[str, Any]] = {}

    def finish(self, data: Any, *, links: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The document: links, data, included (tobscure's member order)."""
        document: dict[str, Any] = {}
        if links:
            document["links"] = dict(links)
        document["data"] = data
        primary = {(d["type"], d["id"]) for d in (data if isinstance(data, list) else [data])}
        included = [v for k, v in self._included.items() if k not in primary]
        if included:
            document["included"] = included
        for resource in [*(data if isinstance(data, list) else [data]), *included]:
            if resource["type"] == "posts" and "id" in self._forum.dropped_fields(
                int(resource["id"])
            ):
                del resource["id"]  # [BROKEN]
        return document

    def _include(self, resource: dict[str, Any]) -> dict[str, str]:
        key = (resource["type"], resource["id"])
        known = self._included.setdefault(key, resource)
        if known is not resource and "relationships" in resource:
            # One resource reached by two include paths carries the union of relationships.
            known.setdefault("relationships", {}).update(resource["relationships"])
        return {"type": resource["type"], "id": resource["id"]}

    def discussion(
        self,
        discussion: _Discussion,
        includes: frozenset[str],
        posts_window: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """A discussion resource [SER-DISC] with the requested relationships."""
        forum, actor = self._forum, self._actor
        comments = forum.visible_comments(discussion.id)
        last = comments[-1] if comments else None
        moderator = forum.is_moderator(actor)
        attributes: dict[str, Any] = {
            "title": discussion.title,
            # IdWithTransliteratedSlugDriver: "234-lorem-ipsum" [DOCS].
            "slug": f"{discussion.id}-{_slugify(discussion.title)}".rstrip("-"),
            "commentCount": len(comments),
            "participantCount": len({p.user_id for p in comments if p.user_id is not None}),
            "createdAt": _date(discussion.created_at),
            "lastPostedAt": _date(last.created_at if last else discussion.created_at),
            "lastPostNumber": last.number if last else 1,
            "canReply": actor is not None,
            "canRename": moderator,
            "canDelete": actor == ADMIN_USER,
            "canHide": moderator,
        }
        if discussion.hidden_at is not None:
            attributes["isHidden"] = True
            attributes["hiddenAt"] = _date(discussion.hidden_at)
        # Extension attributes of a stock install ([DOCS] example): tags, lock, sticky.
        attributes.update(
            {"canTag": moderator, "isLocked": False, "canLock": moderator, "isSticky": False}
        )
        relationships: dict[str, Any] = {}
        if "user" in includes:
            self._user_relation(relationships, "user", discussion.user_id, with_groups=False)
        if "lastPostedUser" in includes and last is not None:
            self._user_relation(relationships, "lastPostedUser", last.user_id, with_groups=False)
        if "tags" in includes:
            tags = [forum.tag_record(t) for t in discussion.tag_ids]
            relationships["tags"] = {
                "data": [self._include(_tag(t)) for t in tags if t is not None]
            }
        if "firstPost" in includes and comments:
            first = forum.visible_posts(discussion.id, actor)[0]
            relationships["firstPost"] = {"data": self._include(self._basic_post(first))}
        if "lastPost" in includes and last is not None:
            relationships["lastPost"] = {"data": self._include(self._basic_post(last))}
        if "posts" in includes and posts_window is not None:
            visible = forum.visible_posts(discussion.id, actor)
            offset, limit = posts_window
            post_includes = frozenset(
                name.removeprefix("posts.") for name in includes if name.startswith("posts.")
            )
            for post in visible[offset : offset + limit]:
                self._include(self.post(post, post_includes))
            relationships["posts"] = {"data": [{"type": "posts", "id": str(p.id)} for p in visible]}
        resource: dict[str, Any] = {
            "type": "discussions",
            "id": str(discussion.id),
            "attributes": attributes,
        }
        if relationships:
            resource["relationships"] = relationships
        return resource

    def _basic_post(self, post: _Post) -> dict[str, Any]:
        """BasicPostSerializer: number, createdAt, contentType, contentHtml [SER-POST]."""
        attributes: dict[str, Any] = {
            "number": post.number,
            "createdAt": _date(post.created_at),
            "contentType": post.type,
        }
        if post.type == "comment":
            attributes["contentHtml"] = self._forum.render(post)
            attributes["renderFailed"] = False
        else:
            attributes["content"] = post.content
        return {"type": "posts", "id": str(post.id), "attributes": attributes}

    def post(self, post: _Post, includes: frozenset[str]) -> dict[str, Any]:
        """A post resource (PostSerializer) [SER-POST]."""
        forum, actor = self._forum, self._actor
        resource = self._basic_post(post)
        attributes = resource["attributes"]
        moderator = forum.is_moderator(actor)
        can_edit = post.type == "comment" and (
            moderator or (actor is not None and actor == post.user_id)
        )
        if post.type == "comment":
            if can_edit:
                attributes["content"] = post.content
            if actor == ADMIN_USER:
                attributes["ipAddress"] = "127.0.0.1"
        if post.edited_at is not None:
            attributes["editedAt"] = _date(post.edited_at)
        if post.hidden_at is not None:
            attributes["isHidden"] = True
            attributes["hiddenAt"] = _date(post.hidden_at)
        attributes.update({"canEdit": can_edit, "canDelete": moderator, "canHide": moderator})
        relationships: dict[str, Any] = {}
        if "user" in includes:
            self._user_relation(
                relationships, "user", post.user_id, with_groups="user.groups" in includes
            )
        if "discussion" in includes:
            relationships["discussion"] = {
                "data": {"type": "discussions", "id": str(post.discussion_id)}
            }
            discussion = forum.discussion_record(post.discussion_id)
            if discussion is not None:
                self._include(_basic_discussion(discussion))
        dropped = forum.dropped_fields(post.id)
        for name in dropped & set(attributes):
            del attributes[name]  # [BROKEN]
        if "user" in dropped:
            relationships.pop("user", None)  # as for a deleted author [SER-POST]
        if relationships:
            resource["relationships"] = relationships
        return resource

    def _user_relation(
        self, relationships: dict[str, Any], name: str, user_id: int | None, *, with_groups: bool
    ) -> None:
        # A null relationship is left out entirely (AbstractSerializer::buildRelationship).
        user = self._forum.user_record(user_id)
        if user is not None:
            relationships[name] = {"data": self._include(self.user(user, with_groups))}

    def user(self, user: _User, with_groups: bool) -> dict[str, Any]:
        """A user resource (UserSerializer) [SER-USER]."""
        forum, actor = self._forum, self._actor
        acting = forum.user_record(actor)
        admin = acting is not None and ADMIN_GROUP in acting.groups
        attributes: dict[str, Any] = {
            "username": user.username,
            "displayName": user.display_name,
            "avatarUrl": None,
            "slug": user.username,
            "joinTime": _date(user.joined_at),
            "discussionCount": 0,
            "commentCount": 0,
            "canEdit": admin,
            "canEditCredentials": admin,
            "canEditGroups": admin,
            "canDelete": admin,
        }
        if admin or actor == user.id:
            attributes["isEmailConfirmed"] = True
            attributes["email"] = f"{user.username}@example.org"
        resource: dict[str, Any] = {"type": "users", "id": str(user.id), "attributes": attributes}
        if with_groups:
            groups = [forum.group_record(g) for g in user.groups]
            resource["relationships"] = {
                "groups": {"data": [self._include(_group(g)) for g in groups]}
            }
        return resource


def _group(group: _Group) -> dict[str, Any]:
    """GroupSerializer [SER-GROUP]."""
    return {
        "type": "groups",
        "id": str(group.id),
        "attributes": {
            "nameSingular": group.singular,
            "namePlural": group.plural,
            "color": group.color,
            "icon": group.icon,
            "isHidden": False,
        },
    }


def _tag(tag: _Tag) -> dict[str, Any]:
    return {
        "type": "tags",
        "id": str(tag.id),
        "attributes": {"name": tag.name, "slug": tag.slug, "color": "#888", "isHidden": False},
    }


def _basic_discussion(discussion: _Discussion) -> dict[str, Any]:
    """BasicDiscussionSerializer: title and slug only [SER-DISC]."""
    return {
        "type": "discussions",
        "id": str(discussion.id),
        "attributes": {
            "title": discussion.title,
            "slug": f"{discussion.id}-{_slugify(discussion.title)}".rstrip("-"),
        },
    }
