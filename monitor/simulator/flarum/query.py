"""Query parameters as Flarum reads them (include, sort, page [LIMIT]) and its links [PAGE]."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote_plus

from monitor.simulator.flarum.errors import _ApiFailure
from monitor.simulator.flarum.model import DEFAULT_LIMIT, MAX_LIMIT

# What each endpoint accepts in `include` (anything else is invalid_parameter, as in Flarum).
_LIST_DISCUSSION_INCLUDES = frozenset(
    {"user", "lastPostedUser", "mostRelevantPost", "mostRelevantPost.user", "firstPost"}
    | {"lastPost", "tags"}
)
_LIST_DISCUSSION_DEFAULT = ("user", "lastPostedUser", "mostRelevantPost", "mostRelevantPost.user")
_SHOW_DISCUSSION_INCLUDES = frozenset(
    {"user", "posts", "posts.discussion", "posts.user", "posts.user.groups", "posts.editedUser"}
    | {"posts.hiddenUser", "lastPostedUser", "firstPost", "lastPost", "tags"}
)
_SHOW_DISCUSSION_DEFAULT = (
    "user",
    "posts",
    "posts.discussion",
    "posts.user",
    "posts.user.groups",
    "posts.editedUser",
    "posts.hiddenUser",
)
_POST_INCLUDES = frozenset({"user", "user.groups", "editedUser", "hiddenUser", "discussion"})
_POST_DEFAULT = ("user", "user.groups", "editedUser", "hiddenUser", "discussion")
_USER_INCLUDES = frozenset({"groups"})


def _nested_query(query: Mapping[str, str]) -> dict[str, Any]:
    """`page[limit]=5&filter[tag]=a` as PHP parses it: {"page": {"limit": "5"}, ...}."""
    nested: dict[str, Any] = {}
    for key, value in query.items():
        name, bracket, rest = key.partition("[")
        if bracket and rest.endswith("]"):
            inner = nested.setdefault(name, {})
            if isinstance(inner, dict):
                inner[rest[:-1]] = value
        else:
            nested[key] = value
    return nested


def _includes(
    query: Mapping[str, Any], available: frozenset[str], default: Iterable[str]
) -> frozenset[str]:
    raw = query.get("include")
    if not isinstance(raw, str) or not raw:
        return frozenset(default)
    wanted = raw.split(",")
    invalid = [name for name in wanted if name not in available]
    if invalid:
        raise _ApiFailure(400, "invalid_parameter", f"Invalid includes [{','.join(invalid)}]")
    return frozenset(wanted)


def _sort(query: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[str | None, bool]:
    raw = query.get("sort")
    if not isinstance(raw, str) or not raw:
        return None, False
    name = raw.removeprefix("-")
    if name not in fields:
        raise _ApiFailure(400, "invalid_parameter", f"Invalid sort field [{name}]")
    return name, raw.startswith("-")


def _page(query: Mapping[str, Any]) -> tuple[int, int]:
    raw = query.get("page")
    page: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    try:
        offset = int(page.get("offset") or 0)
        limit = int(page.get("limit") or 0)
    except ValueError as err:
        raise _ApiFailure(400, "invalid_parameter") from err
    if offset < 0:
        raise _ApiFailure(400, "invalid_parameter", "page[offset] must be >=0")
    limit = min(limit, MAX_LIMIT) if limit > 0 else DEFAULT_LIMIT  # [LIMIT]
    return limit, offset


def _page_link(url: str, query: Mapping[str, Any], offset: int, limit: int) -> str:
    """tobscure's addPaginationLink + PHP http_build_query [PAGE]."""
    params: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in query.items()}
    page = params.setdefault("page", {})
    if not isinstance(page, dict):
        page = params["page"] = {}
    page.pop("number", None)
    page.pop("size", None)
    if offset:
        page["offset"] = str(offset)
    else:
        page.pop("offset", None)
    if "limit" in page:
        page["limit"] = str(limit)
    if not page:
        del params["page"]
    pairs: list[str] = []
    for key, value in params.items():
        if isinstance(value, dict):
            for inner, item in value.items():
                pairs.append(f"{quote_plus(f'{key}[{inner}]')}={quote_plus(str(item))}")
        else:
            pairs.append(f"{quote_plus(key)}={quote_plus(str(value))}")
    return url + ("?" + "&".join(pairs) if pairs else "")
