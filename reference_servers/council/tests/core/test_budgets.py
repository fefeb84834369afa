"""The operator's model, bounded per user: a daily token budget and calls at once.

The server-side LLM here is the scripted LLM behind the stand-in OpenAI endpoint,
which reports `USAGE_PER_REPLY` tokens for every reply, as a provider would; each
user signs in with `signed_in`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from conftest import PROFILES
from fastmcp import Client, Context, FastMCP
from provider_standin import ProviderStandIn

from council.core import (
    LLM,
    GatewaySettings,
    Principal,
    Prompt,
)
from council.core.testing import (
    ScriptedLLM,
    signed_in,
    text,
)
from council.server import create_server

ISSUER = "https://id.example.com"
USAGE_PER_REPLY = {"input_tokens": 1000, "output_tokens": 400}
BUDGET = 1500
"""One reply's tokens fit; a second request's worst case no longer does."""


@pytest.fixture(autouse=True)
def usage_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "usage.db"
    monkeypatch.setenv("MCP_DB_URL", f"sqlite:///{path}")
    return path


def add_ask(server: FastMCP, gateway: GatewaySettings) -> None:
    @server.tool
    async def ask(question: str, ctx: Context) -> str:
        """One short completion."""
        llm = LLM(ctx, gateway)
        return await llm.complete(Prompt("Answer.", question=question), max_tokens=200)


@asynccontextmanager
async def served(llm: ScriptedLLM, **gateway: object) -> AsyncIterator[FastMCP]:
    """A server whose server-side LLM is `llm` behind the stand-in endpoint."""
    async with ProviderStandIn.serving(
        llm, "openai", usage=USAGE_PER_REPLY
    ) as stand_in:
        settings = stand_in.settings(GatewaySettings(**gateway))
        server = create_server(settings)
        add_ask(server, settings)
        yield server


async def ask_as(server: FastMCP, user: str, profile: str = "none") -> str:
    """`ask`, as `user`, from a client of `profile`; what the client reads."""
    options: dict[str, object] = {}
    if PROFILES[profile] is not None:
        options = {
            "sampling_handler": lambda *_: "the client's answer",
            "sampling_capabilities": PROFILES[profile],
        }
    with signed_in(ISSUER, user):
        async with Client(server, **options) as client:
            result = await client.call_tool(
                "ask", {"question": "Well?"}, raise_on_error=False
            )
    return result.content[0].text


async def test_a_request_past_the_budget_never_reaches_the_provider(
    scripted_llm: ScriptedLLM,
) -> None:
    async with served(scripted_llm, budget_tokens=10) as server:
        read = await ask_as(server, "ada")
    assert read.startswith(
        "Today's budget of the server's LLM is spent: 0 of 10 tokens"
    )
    assert "(MCP_SAMPLING_BUDGET_TOKENS)" in read
    assert "It resets at 00:00 UTC, in " in read
    assert scripted_llm.requests == []  # the provider never heard of it


async def test_what_the_provider_reports_is_spent_and_then_the_budget_holds(
    scripted_llm: ScriptedLLM,
) -> None:
    scripted_llm.expect(text("Forty-two."), text("Forty-three."))
    async with served(scripted_llm, budget_tokens=BUDGET) as server:
        first = await ask_as(server, "ada")
        refused = await ask_as(server, "ada")
        other_user = await ask_as(server, "grace")
        ada = Principal(ISSUER, "ada")
        assert await server.usage.used_today(ada) == sum(USAGE_PER_REPLY.values())
    assert first == "Forty-two."
    assert refused.startswith(
        f"Today's budget of the server's LLM is spent: 1,400 of {BUDGET:,} tokens"
    )
    assert other_user == "Forty-three."  # Grace's budget is her own
    assert len(scripted_llm.requests) == 2


async def test_a_clients_own_llm_is_never_counted(scripted_llm: ScriptedLLM) -> None:
    async with served(scripted_llm, budget_tokens=10) as server:
        read = await ask_as(server, "ada", profile="tools")
        assert await server.usage.used_today(Principal(ISSUER, "ada")) == 0
    assert read == "the client's answer"


async def test_one_user_has_at_most_the_allowed_calls_running_at_once(
    scripted_llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_MAX_CONCURRENT_CALLS", "1")
    scripted_llm.expect(text("slow", delay=0.5), text("Grace's"))
    read: dict[str, str] = {}

    async def ask(name: str, user: str, server: FastMCP) -> None:
        read[name] = await ask_as(server, user)

    async with served(scripted_llm) as server, anyio.create_task_group() as group:
        group.start_soon(ask, "ada-1", "ada", server)
        await scripted_llm.started.wait()  # Ada's first call is running
        group.start_soon(ask, "ada-2", "ada", server)
        group.start_soon(ask, "grace", "grace", server)
    assert read["ada-1"] == "slow"
    assert read["ada-2"] == (
        "You already have 1 tool call(s) running on the server's LLM, as many as one "
        "user may (MCP_MAX_CONCURRENT_CALLS=1); try again when one has finished."
    )
    assert read["grace"] == "Grace's"
