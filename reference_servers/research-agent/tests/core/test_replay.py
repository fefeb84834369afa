"""The modern era: one tool body, replayed round by round over MRTR.

Every test here speaks 2026-07-28 (the gateway's legacy path is the rest of the suite).
"""

from __future__ import annotations

import random

import anyio
import pytest
from conftest import ERAS, PROFILES, Connect
from fastmcp import Client, Context, FastMCP
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import InputRequiredResult

from research_agent.core import (
    LLM,
    GatewaySettings,
    Prompt,
    ServerSettings,
)
from research_agent.core.testing import (
    Rounds,
    ScriptedLLM,
    answer,
    prompt_text,
)
from research_agent.server import create_server

pytestmark = pytest.mark.parametrize("era", ["modern"])


def echo(request) -> str:
    """Answer with the question: every answer names the request it answers."""
    return f"re: {prompt_text(request).splitlines()[-2]}"


def add_replay_tools(server: FastMCP, gateway: GatewaySettings) -> None:
    @server.tool
    async def fan_out(questions: list[str], ctx: Context) -> dict:
        """Questions at once, then one that depends on every answer."""
        llm = LLM(ctx, gateway)
        ask = lambda q: llm.complete(Prompt("Answer.", question=q))
        answers = await llm.map(ask, questions)
        last = await llm.complete(Prompt("Sum up.", question=" | ".join(answers)))
        return {"answers": answers, "last": last, "calls": llm.calls_made}

    @server.tool
    async def unseeded(ctx: Context) -> str:
        """Deliberately not deterministic: a fresh random number in its prompt."""
        return await LLM(ctx, gateway).complete(
            Prompt("Answer.", question=f"Is {random.random()} small?")
        )

    @server.tool
    async def seeded(ctx: Context) -> dict:
        """Randomness, time and ids from the gateway; a side effect in a step."""
        llm = LLM(ctx, gateway)
        draws = [llm.random.random(), llm.now(), llm.new_id()]
        fetched = await llm.step("fetch", fetch, "paris")
        first = await llm.complete(Prompt("Answer.", question=f"{draws} {fetched}"))
        second = await llm.complete(Prompt("Answer.", question=first))
        await llm.report_progress(1, 1, "done")
        return {"draws": draws, "fetched": fetched, "second": second}

    @server.tool
    async def chain(links: int, ctx: Context) -> str:
        """`links` requests, each waiting for the one before."""
        llm = LLM(ctx, gateway)
        said = "start"
        for _ in range(links):
            said = await llm.complete(Prompt("Go on.", question=said))
        return said


FETCHES: list[str] = []


async def fetch(city: str) -> dict[str, float]:
    """A read of the outside world: it must happen once per tool call."""
    FETCHES.append(city)
    await anyio.lowlevel.checkpoint()
    return {"temperature": 9.5 + len(FETCHES)}


def watched(rounds: Rounds):
    def setup(server: FastMCP, gateway: GatewaySettings) -> None:
        add_replay_tools(server, gateway)
        rounds.watch(server)

    return setup


@pytest.mark.parametrize("profile", ["tools", "text"])
async def test_concurrent_requests_travel_in_one_round_and_each_answer_finds_its_own(
    connect: Connect, scripted_llm: ScriptedLLM, profile: str
) -> None:
    questions = [f"question {n}" for n in range(5)]
    scripted_llm.expect(*[answer(echo)] * 6)
    rounds = Rounds()
    async with connect(profile, setup=watched(rounds)) as client:
        result = await client.call_tool("fan_out", {"questions": questions})
    assert result.data["answers"] == [f"re: {q}" for q in questions]
    assert result.data["last"].startswith("re: re: question 0 | re: question 1")
    assert result.data["calls"] == 6  # as on the legacy era
    assert rounds.asked == [5, 1, 0]  # 3 tools/call


async def test_the_concurrency_limit_bounds_each_round(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(*[answer(echo)] * 10)
    rounds = Rounds()
    settings = GatewaySettings(max_concurrency=4)
    async with connect("tools", settings=settings, setup=watched(rounds)) as client:
        result = await client.call_tool(
            "fan_out", {"questions": [f"q{n}" for n in range(9)]}
        )
    assert result.data["calls"] == 10
    assert rounds.asked == [4, 4, 1, 1, 0]


async def test_an_unseeded_tool_fails_naming_the_request_it_could_not_explain(
    scripted_llm: ScriptedLLM, era: str
) -> None:
    scripted_llm.expect(answer(echo))
    # Not through `connect`: its `Retries` would report, rightly, that this tool
    # fails differently each time its last round is sent.
    server = create_server()
    add_replay_tools(server, GatewaySettings())
    async with Client(
        server,
        mode=ERAS["modern"],
        sampling_handler=scripted_llm,
        sampling_capabilities=PROFILES["tools"],
    ) as client:
        with pytest.raises(ToolError) as error:
            await client.call_tool("unseeded", {})
    message = str(error.value)
    assert message.startswith("unseeded is not deterministic: on replay it asked for")
    assert "a sampling request saying 'Answer. Is 0." in message
    assert "llm.random" in message


async def test_seeded_draws_steps_and_progress_are_the_same_on_every_round(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    FETCHES.clear()
    progress = []

    async def record(done: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    scripted_llm.expect(answer(echo), answer(echo))
    rounds = Rounds()
    async with connect(
        "tools", setup=watched(rounds), progress_handler=record
    ) as client:
        result = await client.call_tool("seeded", {})
    assert rounds.asked == [1, 1, 0]  # the body ran three times
    assert FETCHES == ["paris"]  # the step once
    assert result.data["fetched"] == {"temperature": 10.5}
    assert progress == ["done"]
    first = scripted_llm.requests[0]
    assert str(result.data["draws"][0]) in prompt_text(first)


async def test_a_call_that_needs_more_rounds_than_allowed_stops_clearly(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(*[answer(echo)] * 3)
    settings = GatewaySettings(max_rounds=3)
    async with connect("tools", settings=settings, setup=add_replay_tools) as client:
        with pytest.raises(
            ToolError, match=r"within 3 rounds \(MCP_SAMPLING_MAX_ROUNDS\)"
        ):
            await client.call_tool("chain", {"links": 5})


async def test_state_larger_than_allowed_stops_clearly(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(answer(lambda _r: "x" * 3000))  # the second is never asked
    settings = GatewaySettings(max_state_bytes=2000)
    async with connect("tools", settings=settings, setup=add_replay_tools) as client:
        with pytest.raises(ToolError, match=r"MCP_SAMPLING_MAX_STATE_BYTES"):
            await client.call_tool("chain", {"links": 2})


KEY = "k" * 32


async def one_round(server: FastMCP, state: str | None = None, answers=None):
    """One `tools/call` of `chain`, by hand: what a replica is asked."""
    async with Client(server, mode=ERAS["modern"], sampling_handler=echo) as client:
        return await client.session.call_tool(
            "chain",
            {"links": 2},
            request_state=state,
            input_responses=answers,
            allow_input_required=True,
        )


def answered(result: InputRequiredResult) -> dict:
    from research_agent.core.testing import as_reply

    return {
        key: as_reply(echo(request.params))
        for key, request in result.input_requests.items()
    }


async def test_replicas_sharing_the_key_serve_any_round_of_a_call(era: str) -> None:
    replicas = [create_server(ServerSettings(request_state_key=KEY)) for _ in range(3)]
    for replica in replicas:
        add_replay_tools(replica, GatewaySettings())
    first = await one_round(replicas[0])
    second = await one_round(replicas[1], first.request_state, answered(first))
    done = await one_round(replicas[2], second.request_state, answered(second))
    assert done.structured_content == {"result": "re: re: start"}


async def test_state_from_a_replica_without_the_key_is_refused(era: str) -> None:
    ours = create_server(ServerSettings(request_state_key=KEY))
    theirs = create_server()  # a key of its own process
    for server in (ours, theirs):
        add_replay_tools(server, GatewaySettings())
    first = await one_round(ours)
    with pytest.raises(MCPError, match="Invalid or expired requestState"):
        await one_round(theirs, first.request_state, answered(first))


def test_a_short_state_key_is_refused(era: str) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ServerSettings(request_state_key="short")
