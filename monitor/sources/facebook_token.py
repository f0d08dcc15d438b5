"""Facebook access-token expiry from /debug_token, so operators renew before polling breaks."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from monitor.config import GraphSourceConfig
from monitor.sources.base import AuthError, TransientError
from monitor.sources.http import request_json


def proof_params(
    config: GraphSourceConfig,
) -> dict[str, str]:
    """`appsecret_proof` for every Graph call of this page, when the app secret is known.

    Hex HMAC-SHA256 of the access token keyed with the app secret ("Securing Requests",
    developers.facebook.com/docs/graph-api/securing-requests); Graph refuses calls without it
    when the app has "Require App Secret" on.
    """
    if config.app_secret is None:
        return {}
    proof = hmac.new(
        config.app_secret.get_secret_value().encode(),
        config.access_token.get_secret_value().encode(),
        hashlib.sha256,
    ).hexdigest()
    return {"appsecret_proof": proof}


@dataclass(frozen=True, kw_only=True)
class TokenExpiry:
    """When a token stops working (None: never) and when its data access lapses."""

    expires_at: datetime | None
    data_access_expires_at: datetime | None
    is_valid: bool

    def first_expiry(self) -> datetime | None:
        """The earlier of the two instants (the one that will break polling first)."""
        instants = [t for t in (self.expires_at, self.data_access_expires_at) if t is not None]
        return min(instants) if instants else None


def _instant(value: object) -> datetime | None:
    # Graph uses 0 for "never expires".
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


async def check_token(config: GraphSourceConfig, session: aiohttp.ClientSession) -> TokenExpiry:
    """Ask /debug_token about the source's own token (a token may inspect itself)."""
    token = config.access_token.get_secret_value()
    response = await request_json(
        session,
        f"{config.api_base_url}/debug_token",
        params={"input_token": token, **proof_params(config)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=config.request_timeout,
    )
    body = response.body
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        if response.status in (400, 401, 403):
            raise AuthError(f"debug_token refused the token (HTTP {response.status})")
        raise TransientError(f"debug_token: unexpected answer (HTTP {response.status})")
    return TokenExpiry(
        expires_at=_instant(data.get("expires_at")),
        data_access_expires_at=_instant(data.get("data_access_expires_at")),
        is_valid=data.get("is_valid") is True,
    )
