"""Sampling messages: every message the gateway sends is built here, every reply read here.

The history shapes follow SEP-1577: an assistant turn of `tool_use` blocks is answered by
exactly one user message holding one `tool_result` per call, paired by id.

    >>> user_message("Hi").content.text
    'Hi'
"""

from __future__ import annotations

from mcp.types import (
    CreateMessageResult,
    CreateMessageResultWithTools,
    SamplingMessage,
    SamplingMessageContentBlock,
    TextContent,
    ToolResultContent,
    ToolUseContent,
)

from ._errors import SamplingFailedError

Reply = CreateMessageResult | CreateMessageResultWithTools
"""What a model answers to one sampling request."""


def user_message(text: str) -> SamplingMessage:
    return SamplingMessage(role="user", content=TextContent(type="text", text=text))


def assistant_text(text: str) -> SamplingMessage:
    return SamplingMessage(
        role="assistant", content=TextContent(type="text", text=text)
    )


def assistant_turn(blocks: list[SamplingMessageContentBlock]) -> SamplingMessage:
    """The model's own turn, sent back as it was (its tool calls, or its text)."""
    return SamplingMessage(role="assistant", content=blocks)


def tool_results(results: list[ToolResultContent]) -> SamplingMessage:
    """The one user message that answers every tool call of the turn before it."""
    return SamplingMessage(role="user", content=results)


def tool_result(call_id: str, text: str, *, is_error: bool) -> ToolResultContent:
    """The answer to one tool call, paired with it by id."""
    return ToolResultContent(
        type="tool_result",
        toolUseId=call_id,
        content=[TextContent(type="text", text=text)],
        isError=is_error,
    )


def text_reply(text: str, *, model: str) -> CreateMessageResult:
    """A plain-text reply, for a model that answers with a bare string."""
    return CreateMessageResult(
        role="assistant",
        content=TextContent(type="text", text=text),
        model=model,
        stopReason="endTurn",
    )


def blocks_of(reply: Reply) -> list[SamplingMessageContentBlock]:
    return reply.content if isinstance(reply.content, list) else [reply.content]


def text_in(blocks: list[SamplingMessageContentBlock]) -> str:
    return "\n".join(b.text for b in blocks if isinstance(b, TextContent))


def tool_uses(blocks: list[SamplingMessageContentBlock]) -> list[ToolUseContent]:
    return [b for b in blocks if isinstance(b, ToolUseContent)]


def reply_text(reply: Reply) -> str:
    """The text of a reply; a `SamplingFailedError` when it holds none."""
    blocks = blocks_of(reply)
    text = text_in(blocks)
    if not text:
        kinds = ", ".join(sorted({b.type for b in blocks})) or "nothing"
        raise SamplingFailedError(f"The LLM answered without text (got {kinds}).")
    return text
