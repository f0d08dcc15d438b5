"""The `fields=` parameter: parsing, checking against known node types, projection ([FEED])."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from monitor.simulator.graph_api.errors import GraphError, _GraphFailure

# Fields each node type knows; asking for anything else is an error, as on the real API, so a
# typo in an adapter's `fields=` fails in tests instead of silently returning nothing.
_KNOWN_FIELDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "PagePost": frozenset(
            {
                "id",
                "created_time",
                "updated_time",
                "message",
                "from",
                "permalink_url",
                "is_hidden",
                "comments",
            }
        ),
        "Comment": frozenset(
            {
                "id",
                "created_time",
                "message",
                "from",
                "parent",
                "is_hidden",
                "permalink_url",
                "comment_count",
                "like_count",
            }
        ),
        "Profile": frozenset({"id", "name"}),
        "Page": frozenset({"id", "name"}),
    }
)
# Defaults when no `fields` (or a bare nested field) is given: [FEED] for posts; comments and
# profiles per the comment and user references.


# Defaults when no `fields` (or a bare nested field) is given: [FEED] for posts; comments and
# profiles per the comment and user references.
_DEFAULT_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "PagePost": ("created_time", "message", "id"),
        "Comment": ("created_time", "from", "message", "id"),
        "Profile": ("name", "id"),
        "Page": ("name", "id"),
    }
)


_NESTED_TYPE: Mapping[str, str] = MappingProxyType({"from": "Profile", "parent": "Comment"})
# Edges that can be expanded inside `fields` ([FEED]): item type and the modifiers taken ([EDGE]).


# Edges that can be expanded inside `fields` ([FEED]): item type and the modifiers taken ([EDGE]).
_EDGE_FIELDS: Mapping[tuple[str, str], tuple[str, frozenset[str]]] = MappingProxyType(
    {("PagePost", "comments"): ("Comment", frozenset({"filter", "order", "limit", "summary"}))}
)


_MODIFIER = re.compile(r"\.(\w+)\(([^()]*)\)")
# A trailing comma: what a broken proxy or serializer might produce.


@dataclass(frozen=True, kw_only=True)
class _Field:
    """One requested field: its nested fields (`from{id,name}`) and modifiers (`.limit(5)`)."""

    nested: FieldSpec | None = None
    args: Mapping[str, str] = field(default_factory=dict)


FieldSpec = dict[str, _Field]


def _default_spec(node_type: str) -> FieldSpec:
    return {name: _Field() for name in _DEFAULT_FIELDS[node_type]}


def _fields(query: Mapping[str, str], node_type: str) -> FieldSpec:
    spec = query.get("fields")
    if not spec:
        return _default_spec(node_type)
    parsed, _ = _parse_fields(spec, 0)
    _check_fields(parsed, node_type)
    return parsed


def _check_fields(fields: FieldSpec, node_type: str) -> None:
    """Reject unknown fields and modifiers up front, as Graph does even for empty results."""
    known = _KNOWN_FIELDS[node_type]
    for name, requested in fields.items():
        if name not in known:
            raise _GraphFailure(
                GraphError(
                    code=100,
                    message=f"(#100) Tried accessing nonexisting field ({name}) on node type"
                    f" ({node_type})",
                )
            )
        edge = _EDGE_FIELDS.get((node_type, name))
        allowed = edge[1] if edge is not None else frozenset()
        for modifier in requested.args:
            if modifier not in allowed:
                message = f"(#100) Unknown modifier ({modifier}) on field ({name})"
                raise _GraphFailure(GraphError(code=100, message=message))
        if requested.nested is None:
            continue
        if edge is not None:
            _check_fields(requested.nested, edge[0])
        elif name in _NESTED_TYPE:
            _check_fields(requested.nested, _NESTED_TYPE[name])


def _parse_fields(spec: str, pos: int) -> tuple[FieldSpec, int]:
    """Parse `id,from{id,name},comments.limit(5){id}` into fields with nesting and modifiers."""
    fields: FieldSpec = {}
    token = ""
    nested: FieldSpec | None = None
    depth = 0  # inside a modifier's parentheses, commas and braces are plain characters
    while pos < len(spec):
        char = spec[pos]
        if depth:
            depth += (char == "(") - (char == ")")
            token += char
        elif char == "(":
            depth = 1
            token += char
        elif char == "{":
            nested, pos = _parse_fields(spec, pos + 1)
            continue
        elif char == "}":
            _add_field(fields, token, nested)
            return fields, pos + 1
        elif char == ",":
            _add_field(fields, token, nested)
            token, nested = "", None
        else:
            token += char
        pos += 1
    _add_field(fields, token, nested)
    return fields, pos


def _add_field(fields: FieldSpec, token: str, nested: FieldSpec | None) -> None:
    """Add `name.mod(arg).mod(arg)` (with its nested fields) to `fields`."""
    token = token.strip()
    if not token:
        return
    name, dot, rest = token.partition(".")
    args: dict[str, str] = {}
    position = 0
    chain = dot + rest
    for match in _MODIFIER.finditer(chain):
        if match.start() != position:
            break
        args[match.group(1)] = match.group(2).strip()
        position = match.end()
    if position != len(chain):
        message = f"(#100) Syntax error in fields at: {token}"
        raise _GraphFailure(GraphError(code=100, message=message))
    fields[name.strip()] = _Field(nested=nested, args=args)


def _project(full: Mapping[str, Any], fields: FieldSpec, node_type: str) -> dict[str, Any]:
    """Keep the requested (already checked) plain fields, and the id always, as Graph does."""
    out: dict[str, Any] = {}
    for name, requested in fields.items():
        if name not in full:
            continue
        value = full[name]
        if name in _NESTED_TYPE:
            nested_type = _NESTED_TYPE[name]
            spec = requested.nested if requested.nested is not None else _default_spec(nested_type)
            value = _project(value, spec, nested_type)
        out[name] = value
    if "id" in full:
        out.setdefault("id", full["id"])
    return out
