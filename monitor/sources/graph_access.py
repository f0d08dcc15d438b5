"""What every Graph read of a Page, Messenger or Instagram source carries, and one plain GET."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from yarl import URL

from monitor.clock import Clock
from monitor.config import GraphSourceConfig
from monitor.sources.base import FatalError
from monitor.sources.facebook_token import proof_params
from monitor.sources.http import JsonResponse, request_json


class GraphAccess:
    """The configured API base, the token (as a header) and its appsecret_proof."""

    def __init__(
        self,
        config: GraphSourceConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
    ) -> None:
        self._session = session
        self._clock = clock
        self._timeout = config.request_timeout
        self.base = config.api_base_url.rstrip("/")
        self.origin = URL(self.base).origin()
        self.token = config.access_token.get_secret_value()
        # Header, never a query parameter: URLs end up in logs and exception messages.
        self.headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        # appsecret_proof on every call when the app secret is known (Meta's recommendation).
        self.proof = proof_params(config)

    def check_link(self, link: str, where: str | None = None) -> str:
        """A paging link, refused (FatalError) unless it stays on the configured API origin."""
        if URL(link, encoded=True).origin() != self.origin:
            # Never hand the token to a host the operator did not configure.
            prefix = f"{where}: " if where else ""
            raise FatalError(
                f"{prefix}paging.next points at {URL(link).origin()},"
                f" not at the configured api_base_url {self.origin}"
            )
        return link

    async def get(self, url: str, params: Mapping[str, str] | None) -> JsonResponse:
        """One Graph GET with the token and the proof; 5xx JSON is kept (it carries codes)."""
        return await request_json(
            self._session,
            url,
            params={**(params or {}), **self.proof},
            headers=self.headers,
            timeout=self._timeout,
            clock=self._clock,
            # Graph 500s carry error codes too (e.g. code 2, is_transient).
            accept_5xx_json=True,
        )
