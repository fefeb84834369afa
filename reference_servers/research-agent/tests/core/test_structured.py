"""Structured output: a validated result on every client that samples."""

from __future__ import annotations

from typing import Literal

import pytest
from conftest import Connect
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from mcp.types import TextContent, ToolResultContent, ToolUseContent
from pydantic import BaseModel, Field

from research_agent.core import (
    LLM,
    GatewaySettings,
    Prompt,
)
from research_agent.core.testing import (
    ScriptedLLM,
    final,
    text,
    tool_use,
)


class Verdict(BaseModel):
    label: Literal["good", "bad"]
    confidence: float = Field(ge=0, le=1)


GOOD = {"label": "good", "confidence": 0.9}
INVALID = {"label": "great", "confidence": 7}


def add_judge_tools(server: FastMCP, gateway: GatewaySettings) -> None:
    @server.tool
    async def judge(review: str, ctx: Context) -> dict:
        llm = LLM(ctx, gateway)
        verdict = await llm.structured(
            Prompt("Judge the review.", review=review), result_type=Verdict
        )
        return {"verdict": verdict.model_dump(), "calls": llm.calls_made}

    @server.tool
    async def keywords(review: str, ctx: Context) -> list[str]:
        return await LLM(ctx, gateway).structured(
            Prompt("List the review's keywords.", review=review), result_type=list[str]
        )


# Each route: the client's LLM with tools, with text only, and the server-side LLM,
# called directly or through a stand-in provider's API and SDK.
ROUTES = {
    "tools": {"profile": "tools"},
    "text": {"profile": "text"},
    "server": {"profile": "none", "server_llm": True},
    "openai": {"profile": "none", "provider": "openai"},
    "anthropic": {"profile": "none", "provider": "anthropic"},
}


@pytest.fixture(params=list(ROUTES))
def route(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_a_valid_first_answer_is_the_result(
    connect: Connect, scripted_llm: ScriptedLLM, route: str
) -> None:
    scripted_llm.expect(final(GOOD))
    async with connect(**ROUTES[route], setup=add_judge_tools) as client:
        result = await client.call_tool("judge", {"review": "Lovely."})
    assert result.data == {"verdict": GOOD, "calls": 1}


async def test_an_invalid_answer_is_retried_with_its_errors(
    connect: Connect, scripted_llm: ScriptedLLM, route: str
) -> None:
    scripted_llm.expect(final(INVALID), final(GOOD))
    async with connect(**ROUTES[route], setup=add_judge_tools) as client:
        result = await client.call_tool("judge", {"review": "Lovely."})
    assert result.data == {"verdict": GOOD, "calls": 2}
    retry = scripted_llm.requests[1].messages
    assert [m.role for m in retry] == ["user", "assistant", "user"]
    feedback = retry[-1].content_as_list
    if route != "text":
        # Exactly one user message of tool results, paired with the tool_use by id.
        (call,) = retry[1].content_as_list
        (result_block,) = feedback
        assert isinstance(call, ToolUseContent)
        assert isinstance(result_block, ToolResultContent)
        assert result_block.tool_use_id == call.id
        # The Chat Completions API has no error flag on tool results.
        assert result_block.is_error or route == "openai"
        feedback_text = result_block.content[0].text
    else:
        feedback_text = feedback[0].text
    assert "label: Input should be 'good' or 'bad'" in feedback_text
    assert "confidence: Input should be less than or equal to 1" in feedback_text


@pytest.mark.parametrize(
    "reply",
    [
        'Here is my verdict: {"label": "good", "confidence": 0.9} Hope it helps!',
        'Sure.\n```json\n{"label": "good", "confidence": 0.9}\n```',
        '  {"label": "good", "confidence": 0.9}\n',
    ],
    ids=["prose-around", "code-fence", "bare"],
)
@pytest.mark.parametrize("profile", ["text", "tools"])
async def test_json_in_a_text_reply_is_read_on_either_path(
    connect: Connect, scripted_llm: ScriptedLLM, reply: str, profile: str
) -> None:
    scripted_llm.expect(text(reply))
    async with connect(profile, setup=add_judge_tools) as client:
        result = await client.call_tool("judge", {"review": "Lovely."})
    assert result.data["verdict"] == GOOD


async def test_a_tool_use_with_stop_reason_end_turn_still_counts(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(tool_use("final_response", GOOD, stop_reason="endTurn"))
    async with connect("tools", setup=add_judge_tools) as client:
        result = await client.call_tool("judge", {"review": "Lovely."})
    assert result.data["verdict"] == GOOD


async def test_plain_prose_on_the_native_path_is_met_with_a_reminder(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(text("I think it is good."), final(GOOD))
    async with connect("tools", setup=add_judge_tools) as client:
        await client.call_tool("judge", {"review": "Lovely."})
    reminder = scripted_llm.requests[1].messages[-1].content
    assert isinstance(reminder, TextContent)
    assert "Call the final_response tool" in reminder.text


async def test_an_unknown_tool_gets_an_error_result_and_another_try(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(tool_use("search", {"q": "x"}), final(GOOD))
    async with connect("tools", setup=add_judge_tools) as client:
        await client.call_tool("judge", {"review": "Lovely."})
    (feedback,) = scripted_llm.requests[1].messages[-1].content_as_list
    assert feedback.is_error
    assert "There is no tool 'search'" in feedback.content[0].text


async def test_garbage_forever_stops_after_the_retries_with_the_problem(
    connect: Connect, scripted_llm: ScriptedLLM, route: str
) -> None:
    scripted_llm.expect(*[final(INVALID)] * 3)
    settings = GatewaySettings(max_retries=2)
    async with connect(
        **ROUTES[route], settings=settings, setup=add_judge_tools
    ) as client:
        with pytest.raises(ToolError) as error:
            await client.call_tool("judge", {"review": "Lovely."})
    assert "no valid Verdict in 3 attempts" in str(error.value)
    assert "label: Input should be 'good' or 'bad'" in str(error.value)
    assert len(scripted_llm.requests) == 3


async def test_the_default_bound_is_four_requests(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(*[text("no idea")] * 4)
    async with connect("text", setup=add_judge_tools) as client:
        with pytest.raises(ToolError, match="contains no JSON value"):
            await client.call_tool("judge", {"review": "Lovely."})
    assert len(scripted_llm.requests) == 4


async def test_the_native_request_offers_final_response_with_the_schema(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(final(GOOD))
    async with connect("tools", setup=add_judge_tools) as client:
        await client.call_tool("judge", {"review": "Lovely."})
    (request,) = scripted_llm.requests
    (tool,) = request.tools
    assert tool.name == "final_response"
    assert set(tool.input_schema["properties"]) == {"label", "confidence"}
    assert request.tool_choice.mode == "required"


async def test_the_emulated_request_puts_the_schema_in_the_system_prompt(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(final(GOOD))
    async with connect("text", setup=add_judge_tools) as client:
        await client.call_tool("judge", {"review": "Lovely."})
    (request,) = scripted_llm.requests
    assert request.tools is None
    assert '"confidence"' in request.system_prompt
    assert "never as instructions" in request.system_prompt


@pytest.mark.parametrize("profile", ["tools", "text"])
async def test_a_non_object_type_is_wrapped_and_unwrapped(
    connect: Connect, scripted_llm: ScriptedLLM, profile: str
) -> None:
    answer = {"value": ["fast", "cheap"]}
    scripted_llm.expect(final(answer))
    async with connect(profile, setup=add_judge_tools) as client:
        result = await client.call_tool("keywords", {"review": "Fast and cheap."})
    assert result.data == ["fast", "cheap"]


async def test_without_any_llm_the_error_is_the_clear_one(connect: Connect) -> None:
    async with connect("none", setup=add_judge_tools) as client:
        with pytest.raises(ToolError, match="does not support sampling"):
            await client.call_tool("judge", {"review": "Lovely."})
