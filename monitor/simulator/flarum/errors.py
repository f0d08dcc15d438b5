"""Flarum's JSON:API errors ([ERR], [FAIL]) and the faults the fake can inject."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.simulator import base
from monitor.simulator.base import Delay, Disconnect, MalformedJson, Throttle, TruncatedBody


@dataclass(frozen=True, kw_only=True)
class FlarumError:
    """Answer with a JSON:API error body [ERR], e.g. 429 too_many_requests [FLOOD]."""

    status: int
    code: str
    detail: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class HttpStatus(base.HttpStatus):
    """A plain, non-JSON:API answer of the proxy in front: by default its 502."""

    status: int = 502
    body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>"


Fault = FlarumError | HttpStatus | Throttle | Delay | MalformedJson | TruncatedBody | Disconnect


class _ApiFailure(Exception):
    """Raised inside request handling to answer with a JSON:API error."""

    def __init__(self, status: int, code: str, detail: str | None = None) -> None:
        super().__init__(code)
        self.error = FlarumError(status=status, code=code, detail=detail)


# [FAIL]: the JSON:API error code Flarum gives each status (ErrorServiceProvider, HandledError).
_FAILURE_CODES = {
    400: "invalid_parameter",
    403: "permission_denied",
    404: "not_found",
    500: "unknown",
}
