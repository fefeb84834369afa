"""Protection for the streamable HTTP transport.

Over HTTP the server is reachable by more than the client that started it, so it
refuses what stdio never sees:

- a `Host` header naming anything but loopback or `MCP_HTTP_ALLOWED_HOSTS` (421), and a
  foreign `Origin` (403) — a web page cannot reach the server by DNS rebinding;
- with `MCP_HTTP_TOKEN`, a request without `Authorization: Bearer <token>` (401).

`ServerSettings` already refuses to serve beyond loopback without a token.

    server = create_server()
    server.run("http", host=..., port=..., **protect(server, ServerSettings()))
"""

from __future__ import annotations

import hmac
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.auth import AccessToken, TokenVerifier

from .config import ServerSettings


class SharedToken(TokenVerifier):
    """Accepts exactly one bearer token, compared in constant time."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        return AccessToken(token=token, client_id="shared-token", scopes=[])


def protect(server: FastMCP, settings: ServerSettings) -> dict[str, Any]:
    """Install the token check on `server`; the guard options for `server.run`."""
    if settings.http_token is not None:
        server.auth = SharedToken(settings.http_token.get_secret_value())
    return {"host_origin_protection": True, "allowed_hosts": settings.allowed_hosts}
