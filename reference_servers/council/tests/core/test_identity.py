"""Who calls: OAuth 2.1 for HTTP, each request's principal, and what is theirs.

The token checks themselves run against a real OpenID provider in the template's own
tests (its `nox -s identity`); here, the server's side of the contract: settings that
cannot work are refused, its protected resource metadata and challenges, and a modern
call's state that only its own user may continue.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from conftest import ERAS, PROFILES
from fastmcp import Client, Context, FastMCP
from mcp.types import InputRequiredResult

from council.core import (
    LLM,
    GatewaySettings,
    LoadedSettings,
    Principal,
    PrincipalInLogs,
    Prompt,
    ServerSettings,
    current_principal,
    load_settings,
)
from council.core.testing import (
    answer,
    as_reply,
    prompt_text,
    signed_in,
)
from council.server import create_server

ISSUER = "https://id.example.com"
RESOURCE = "https://mcp.example.com/mcp"
ADA, GRACE = "ada", "grace"


@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        ({"MCP_AUTH_ISSUER": ISSUER}, "MCP_AUTH_ISSUER needs MCP_AUTH_AUDIENCE"),
        ({"MCP_AUTH_AUDIENCE": RESOURCE}, "only used with MCP_AUTH_ISSUER"),
        (
            {
                "MCP_AUTH_ISSUER": ISSUER,
                "MCP_AUTH_AUDIENCE": RESOURCE,
                "MCP_HTTP_TOKEN": "tok-123456",
            },
            "two ways to authenticate: set one of them",
        ),
        (
            {"MCP_AUTH_ISSUER": "http://id.example.com", "MCP_AUTH_AUDIENCE": RESOURCE},
            "MCP_AUTH_ISSUER (--auth-issuer): Value error, must be https://",
        ),
    ],
    ids=["no-audience", "no-issuer", "issuer-and-token", "plain-http-issuer"],
)
def test_sign_in_settings_that_cannot_work_are_refused(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], problem: str
) -> None:
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match="invalid configuration") as refused:
        load_settings([ServerSettings])
    assert problem in str(refused.value)
    assert "tok-123456" not in str(refused.value)


def oauth_server() -> FastMCP:
    http = ServerSettings(auth_issuer=ISSUER, auth_audience=RESOURCE)
    return create_server(http)


async def test_the_server_names_where_to_sign_in_and_refuses_requests_without_a_token() -> (
    None
):
    app = oauth_server().http_app()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        refused = await http.post("/mcp", json={})
        documents = [
            (await http.get(path)).json()
            for path in (
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/mcp",
            )
        ]
        health = await http.get("/health")
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert (
        'resource_metadata="https://mcp.example.com/.well-known/'
        'oauth-protected-resource/mcp"'
    ) in challenge
    for document in documents:
        assert document["resource"] == RESOURCE
        assert document["authorization_servers"] == [ISSUER]
    assert health.status_code == 200  # a load balancer's checks need no token


def add_chain(server: FastMCP, gateway: GatewaySettings) -> None:
    @server.tool
    async def chain(ctx: Context) -> dict:
        """Two requests, one after the other: two rounds on the modern era."""
        llm = LLM(ctx, gateway)
        first = await llm.complete(Prompt("Go on.", question="start"))
        second = await llm.complete(Prompt("Go on.", question=first))
        return {"said": second, "by": current_principal().subject}


async def first_round(server: FastMCP, user: str) -> InputRequiredResult:
    with signed_in(ISSUER, user):
        async with Client(server, mode=ERAS["modern"], **client_of("tools")) as client:
            result = await client.session.call_tool(
                "chain", {}, allow_input_required=True
            )
    assert isinstance(result, InputRequiredResult)
    return result


def client_of(profile: str) -> dict:
    reply = answer(lambda request: f"re: {prompt_text(request).splitlines()[-2]}")
    return {
        "sampling_handler": lambda _m, params, _c: reply.respond(params),
        "sampling_capabilities": PROFILES[profile],
    }


async def test_a_modern_calls_state_continues_for_its_own_user_only() -> None:
    server = create_server()
    add_chain(server, GatewaySettings())
    started = await first_round(server, ADA)
    answers = {
        key: as_reply(f"re: {prompt_text(request.params).splitlines()[-2]}")
        for key, request in started.input_requests.items()
    }
    with signed_in(ISSUER, GRACE):
        async with Client(server, mode=ERAS["modern"], **client_of("tools")) as client:
            refused = await client.session.call_tool(
                "chain",
                {},
                request_state=started.request_state,
                input_responses=answers,
                allow_input_required=True,
            )
    assert refused.is_error
    assert refused.content[0].text == (
        "This tool call's requestState was issued to another user, so it cannot "
        "continue a call of yours: call the tool again from the start."
    )
    with signed_in(ISSUER, ADA):
        async with Client(server, mode=ERAS["modern"], **client_of("tools")) as client:
            result = await client.call_tool("chain", {})
    assert result.data["by"] == ADA


async def test_logs_and_traces_name_the_caller_by_a_hash_never_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    class Record(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.principal)  # type: ignore[attr-defined]

    handler = Record()
    handler.addFilter(PrincipalInLogs())
    logger = logging.getLogger("council")
    logger.addHandler(handler)
    server = create_server()

    @server.tool
    async def note(ctx: Context) -> str:
        """Logs one line."""
        inside = logging.getLogger("council.note")
        inside.warning("a line inside a call")
        return "noted"

    try:
        with signed_in(ISSUER, ADA) as ada:
            async with Client(server) as client:
                await client.call_tool("note", {})
        logger.warning("a line outside any call")
    finally:
        logger.removeHandler(handler)
    assert seen == [ada.digest, "-"]
    assert (
        ada.digest == Principal(ISSUER, ADA).digest != Principal(ISSUER, GRACE).digest
    )
    assert "signed-in-ada" not in caplog.text


def test_nothing_signs_in_over_stdio_so_its_one_user_is_local() -> None:
    settings = load_settings([ServerSettings])
    assert isinstance(settings, LoadedSettings)
    assert current_principal() == Principal("local", "local")
