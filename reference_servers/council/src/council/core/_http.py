"""Protection for the streamable HTTP transport.

Over HTTP the server is reachable by more than the client that started it, so it
refuses what stdio never sees:

- a `Host` header naming anything but loopback or `MCP_HTTP_ALLOWED_HOSTS` (421), and a
  foreign `Origin` (403) — a web page cannot reach the server by DNS rebinding;
- a `Host` that is not exactly `host[:port]` (400);
- with `MCP_HTTP_TOKEN` or `MCP_AUTH_ISSUER`, a request without a valid
  `Authorization: Bearer ...` (401; see `_identity.py` for OAuth);
- serving beyond loopback without a token and allowed hosts (it does not start);
- more than `MCP_HTTP_MAX_SESSIONS` sessions, or one idle past
  `MCP_HTTP_SESSION_IDLE_TIMEOUT`: abandoned sessions make room for new clients.

`SamplingServer` (`_server.py`) applies all of it to every way of serving HTTP.
"""

from __future__ import annotations

import hmac
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastmcp.server.auth import AccessToken, TokenVerifier
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._replay import is_modern


class SharedToken(TokenVerifier):
    """Accepts exactly one bearer token, compared in constant time."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        return AccessToken(token=token, client_id="shared-token", scopes=[])


_HOST = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$"
)


def is_host_header(value: str) -> bool:
    """Whether a `Host` header is exactly `host` or `host:port`.

    >>> is_host_header("127.0.0.1:8000"), is_host_header("127.0.0.1:8000@evil.com")
    (True, False)
    """
    return bool(_HOST.match(value))


class StrictHost:
    """Refuses (400) a request whose `Host` is not `host[:port]`: FastMCP's own check
    reads only what comes before the first colon, so `127.0.0.1:1@evil.com` passed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            if not is_host_header(host):
                response = PlainTextResponse("Invalid Host header", status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass
class _Session:
    last_active: float
    in_flight: int = 0
    owner: dict[str, Any] = field(default_factory=dict)
    """Who its client signed in as (the request scope's `user` and `auth`): the SDK
    lets only the user who opened a session end it."""
    credentials: bytes | None = None
    """The `Authorization` header that opened it: the route demands one."""


class SessionBounds:
    """At most `max_sessions` HTTP sessions, none idle longer than `idle_timeout`.

    Sessions are learnt from the `Mcp-Session-Id` the server answers with. A session
    idle past the timeout is ended (the protocol's `DELETE`); when every slot is taken,
    the least recently used session with no request in flight makes room for a new
    client, so a flood of abandoned sessions cannot lock clients out. Only when every
    session is busy does a new client get 503; a modern (2026-07-28) request opens no
    session and is never refused for want of one. A session is ended as its own user
    (whoever the authentication before this middleware found, with the credentials
    that opened it), so a static token's and an OAuth user's sessions alike.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_sessions: int,
        idle_timeout: float,
    ) -> None:
        self.app = app
        self._max = max_sessions
        self._idle = idle_timeout
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._end_idle(scope)
        headers = Headers(scope=scope)
        session_id = headers.get("mcp-session-id")
        # Only a legacy client without a session may open one: a modern request
        # never does, so a full house does not turn it away.
        version = headers.get("mcp-protocol-version")
        opens = session_id is None and not is_modern(version)
        full = opens and len(self._sessions) >= self._max
        if full and not await self._make_room(scope):
            response = PlainTextResponse(
                "Every session of this server is busy; try again shortly.",
                status_code=503,
            )
            await response(scope, receive, send)
            return
        owner = {key: scope[key] for key in ("user", "auth") if key in scope}
        credentials = headers.get("authorization")
        session = self._sessions.get(session_id) if session_id else None
        if session_id is not None and session is not None:
            session.in_flight += 1
            self._sessions.move_to_end(session_id)

        async def learn(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered = Headers(raw=message["headers"]).get("mcp-session-id")
                if answered and answered not in self._sessions:
                    self._sessions[answered] = _Session(
                        time.monotonic(),
                        owner=owner,
                        credentials=credentials.encode() if credentials else None,
                    )
                if session_id and message["status"] == 404:  # gone already
                    self._sessions.pop(session_id, None)
            await send(message)

        try:
            await self.app(scope, receive, learn)
        finally:
            if session is not None:
                session.in_flight -= 1
                session.last_active = time.monotonic()
            if scope["method"] == "DELETE" and session_id:
                self._sessions.pop(session_id, None)

    async def _end_idle(self, scope: Scope) -> None:
        stale = time.monotonic() - self._idle
        for session_id, session in list(self._sessions.items()):
            if session.in_flight == 0 and session.last_active < stale:
                await self._end(scope, session_id)

    async def _make_room(self, scope: Scope) -> bool:
        for session_id, session in self._sessions.items():  # least recently used first
            if session.in_flight == 0:
                await self._end(scope, session_id)
                return True
        return False

    async def _end(self, scope: Scope, session_id: str) -> None:
        """End a session as its client would: `DELETE` with its id, as its user."""
        session = self._sessions.pop(session_id, None)
        headers = [(b"host", Headers(scope=scope).get("host", "").encode())]
        headers.append((b"mcp-session-id", session_id.encode()))
        if session is not None and session.credentials is not None:
            headers.append((b"authorization", session.credentials))
        request = {
            **{
                key: value
                for key, value in scope.items()
                if key not in {"user", "auth"}
            },
            **(session.owner if session is not None else {}),
            "method": "DELETE",
            "headers": headers,
            "query_string": b"",
        }

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(_message: Message) -> None:
            pass

        await self.app(request, receive, discard)
