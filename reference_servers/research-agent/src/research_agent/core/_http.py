"""Protection for the streamable HTTP transport.

Over HTTP the server is reachable by more than the client that started it, so it
refuses what stdio never sees:

- a `Host` header naming anything but loopback or `MCP_HTTP_ALLOWED_HOSTS` (421), and a
  foreign `Origin` (403) — a web page cannot reach the server by DNS rebinding;
- with `MCP_HTTP_TOKEN`, a request without `Authorization: Bearer <token>` (401);
- serving beyond loopback without a token and allowed hosts (it does not start).

`SamplingServer` (`_server.py`) applies all of it to every way of serving HTTP.
"""

from __future__ import annotations

import hmac

from fastmcp.server.auth import AccessToken, TokenVerifier


class SharedToken(TokenVerifier):
    """Accepts exactly one bearer token, compared in constant time."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        return AccessToken(token=token, client_id="shared-token", scopes=[])
