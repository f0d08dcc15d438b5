"""Graph errors as the real API words them ([E4] ... [E190], [PROOF], [V26IDS]), and the faults."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from monitor.simulator.base import Delay, Disconnect, HttpStatus, MalformedJson, TruncatedBody


@dataclass(frozen=True, kw_only=True)
class GraphError:
    """Answer with a Graph error body `{"error": {...}}`; message/type default to the real ones."""

    code: int
    subcode: int | None = None
    message: str | None = None
    type: str | None = None
    status: int = 400
    is_transient: bool | None = None


Fault = GraphError | HttpStatus | Delay | MalformedJson | TruncatedBody | Disconnect
# Inside a batch a fault shapes one sub-response: GraphError, HttpStatus and MalformedJson become
# its code and body, Delay holds the whole batch answer back, and TruncatedBody or Disconnect
# give the null entry of an operation that did not complete in time ([BATCH]).


# (code, subcode) -> (type, message, is_transient); subcode None is the code's fallback.
_REAL_ERRORS: Mapping[tuple[int, int | None], tuple[str, str, bool | None]] = MappingProxyType(
    {
        (1, None): ("OAuthException", "An unknown error occurred", None),
        (2, None): (
            "OAuthException",
            "An unexpected error has occurred. Please retry your request later.",
            True,
        ),
        (4, None): ("OAuthException", "(#4) Application request limit reached", True),  # [E4]
        (10, None): (
            "OAuthException",
            "(#10) Application does not have permission for this action",
            None,
        ),
        (17, None): ("OAuthException", "(#17) User request limit reached", None),
        (32, None): ("OAuthException", "(#32) Page request limit reached", None),  # [E32]
        # [E100]; {id} is filled in with the object id of the request.
        (100, 33): (
            "GraphMethodException",
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due"
            " to missing permissions, or does not support this operation. Please read the Graph"
            " API documentation at https://developers.facebook.com/docs/graph-api",
            None,
        ),
        (100, None): ("OAuthException", "(#100) Invalid parameter", None),
        # [E104]
        # [IDS]; {id} is filled in with the ids that do not exist.
        (803, None): (
            "OAuthException",
            "(#803) Some of the aliases you requested do not exist: {id}",
            None,
        ),
        (104, None): (
            "OAuthException",
            "An access token is required to request this resource.",
            None,
        ),
        (190, None): ("OAuthException", "Invalid OAuth access token data.", None),  # [E190]
        (190, 460): (
            "OAuthException",
            "Error validating access token: The session has been invalidated because the user"
            " changed their password or Facebook has changed the session for security reasons.",
            None,
        ),
        (190, 463): (
            "OAuthException",
            "Error validating access token: Session has expired on Friday, 05-Jan-24 13:00:00"
            " PST. The current time is Saturday, 06-Jan-24 02:11:32 PST.",
            None,
        ),
        (190, 467): (
            "OAuthException",
            "Error validating access token: The session is invalid because the user logged out.",
            None,
        ),
        (200, None): ("OAuthException", "(#200) Permissions error", None),
        (613, None): (
            "OAuthException",
            "(#613) Calls to this api have exceeded the rate limit.",
            None,
        ),
        (80001, None): (
            "OAuthException",
            "(#80001) There have been too many calls to this Page account. Wait a bit and try"
            " again. For more info, please refer to"
            " https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
            None,
        ),
    }
)


_ROOT_IDS_REFUSED = GraphError(  # [V26IDS]
    code=100,
    message="(#100) Root requests using GET /?ids=... are not supported in this version. Use"
    " per-object requests or supported batching.",
)


_PROOF_REQUIRED = GraphError(  # [PROOF]
    code=100,
    type="GraphMethodException",
    message="API calls from the server require an appsecret_proof argument",
)


_PROOF_INVALID = GraphError(  # [PROOF]
    code=100,
    type="GraphMethodException",
    message="Invalid appsecret_proof provided in the API argument",
)


# A trailing comma: what a broken proxy or serializer might produce.
_MALFORMED = b'{"data": [{"id": "1_2", "message": "x"},]}'


class _GraphFailure(Exception):
    """Raised inside request handling to answer with a Graph error."""

    def __init__(self, error: GraphError, object_id: str = "") -> None:
        super().__init__(error.code)
        self.error = error
        self.object_id = object_id


def _unknown_path_error(path: str) -> _GraphFailure:
    return _GraphFailure(
        GraphError(code=2500, message=f"Unknown path components: {path}", type="OAuthException")
    )


def _invalid_parameter() -> _GraphFailure:
    return _GraphFailure(GraphError(code=100))


def _trace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]
