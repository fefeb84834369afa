"""HTTP sessions are bounded: abandoned ones make room, idle ones end, busy ones stay.

`SessionBounds` in front of a stand-in MCP endpoint that opens a session on every
legacy request without one, as the real one does for `initialize`; a modern request
(2026-07-28) opens none.
"""

from __future__ import annotations

import itertools
import time

import anyio
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from council.core._http import SessionBounds

MODERN = b"2026-07-28"


class Endpoint:
    """Opens a session per new client, serves known ones, ends them on DELETE."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.ended: list[str] = []
        self.ended_by: list[tuple[str | None, bytes | None]] = []
        """The user each DELETE came from, and the credentials it carried."""
        self.busy = anyio.Event()
        self.release = anyio.Event()
        self._ids = (f"{n:032x}" for n in itertools.count(1))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        session = headers.get(b"mcp-session-id", b"").decode()
        status, answer = 200, []
        if scope["method"] == "DELETE":
            self.open.discard(session)
            self.ended.append(session)
            self.ended_by.append((scope.get("user"), headers.get(b"authorization")))
        elif headers.get(b"mcp-protocol-version") == MODERN:
            pass  # stateless: served, no session
        elif not session:
            session = next(self._ids)
            self.open.add(session)
            answer = [(b"mcp-session-id", session.encode())]
        elif session not in self.open:
            status = 404
        elif scope["path"] == "/slow":
            self.busy.set()
            await self.release.wait()
        await send({"type": "http.response.start", "status": status, "headers": answer})
        await send({"type": "http.response.body", "body": b""})


def client(endpoint: Endpoint, **bounds: float) -> httpx.AsyncClient:
    app = SignedIn(SessionBounds(endpoint, **bounds))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    )


class SignedIn:
    """What the server's authentication does before the bounds: the request's user
    (here, whoever the `x-user` header names) in its scope."""

    def __init__(self, app: SessionBounds) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = dict(scope["headers"]).get(b"x-user")
        if user is not None:
            scope = {**scope, "user": user.decode()}
        await self.app(scope, receive, send)


async def open_session(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post("/mcp")


async def test_abandoned_sessions_make_room_for_a_new_client() -> None:
    endpoint = Endpoint()
    async with client(endpoint, max_sessions=3, idle_timeout=60) as http:
        first, *_ = [await open_session(http) for _ in range(20)]
        newcomer = await open_session(http)
    assert newcomer.status_code == 200
    assert len(endpoint.open) == 3
    assert first.headers["mcp-session-id"] in endpoint.ended  # least recently used


async def test_a_session_is_ended_as_the_user_who_opened_it() -> None:
    """Only whoever opened a session may end it (the SDK refuses anyone else's
    DELETE as if the session did not exist): room is made as that user."""
    endpoint = Endpoint()
    async with client(endpoint, max_sessions=2, idle_timeout=60) as http:
        ada = {"x-user": "ada", "authorization": "Bearer ada's"}
        first = (await http.post("/mcp", headers=ada)).headers["mcp-session-id"]
        await http.post("/mcp", headers={"x-user": "grace"})
        await http.post("/mcp", headers={"x-user": "grace"})  # ends Ada's session
    assert endpoint.ended == [first]
    assert endpoint.ended_by == [("ada", b"Bearer ada's")]


async def test_the_least_recently_used_session_goes_first() -> None:
    endpoint = Endpoint()
    async with client(endpoint, max_sessions=2, idle_timeout=60) as http:
        older, newer = [
            (await open_session(http)).headers["mcp-session-id"] for _ in "ab"
        ]
        await http.post("/mcp", headers={"mcp-session-id": older})  # in use again
        await open_session(http)
    assert endpoint.ended == [newer]


async def test_a_busy_session_is_never_ended_and_a_full_house_says_so() -> None:
    endpoint = Endpoint()
    async with client(endpoint, max_sessions=1, idle_timeout=60) as http:
        busy = (await open_session(http)).headers["mcp-session-id"]
        async with anyio.create_task_group() as group:
            slow = {"mcp-session-id": busy}
            group.start_soon(lambda: http.post("/slow", headers=slow))
            await endpoint.busy.wait()
            refused = await open_session(http)
            modern = await http.post("/mcp", headers={"mcp-protocol-version": MODERN})
            endpoint.release.set()
    assert refused.status_code == 503
    assert "busy" in refused.text
    assert modern.status_code == 200, "a modern request opens no session"
    assert endpoint.ended == []


async def test_an_idle_session_is_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = Endpoint()
    async with client(endpoint, max_sessions=10, idle_timeout=30) as http:
        idle = (await open_session(http)).headers["mcp-session-id"]
        later = time.monotonic() + 31
        monkeypatch.setattr(time, "monotonic", lambda: later)
        await open_session(http)
    assert endpoint.ended == [idle]
