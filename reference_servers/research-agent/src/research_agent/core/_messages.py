"""Sampling messages: every message the gateway sends is built here, every reply read here.

The history shapes follow SEP-1577: an assistant turn of `tool_use` blocks is answered by
exactly one user message holding one `tool_result` per call, paired by id. Text the
server did not write goes into a message fenced (`fence`) or `quoted`: the model's own
earlier turns too, so nothing in a conversation but the server's fences can carry a
nonce once the request is `stamped`. Every answer, whichever era or route brought it,
is read here by `check_reply`, from its JSON: a reply the gateway cannot use is one
`SamplingFailedError` saying what the model sent, never a parser's dump.

    >>> user_message("Hi").content.text
    'Hi'
"""

from __future__ import annotations

import json
from typing import Any

from mcp.types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    SamplingMessage,
    SamplingMessageContentBlock,
    TextContent,
    ToolResultContent,
    ToolUseContent,
)
from pydantic import ValidationError

from ._errors import SamplingFailedError
from ._prompting import neutralise, with_nonce

Reply = CreateMessageResult | CreateMessageResultWithTools
"""What a model answers to one sampling request."""


def user_message(text: str) -> SamplingMessage:
    return SamplingMessage(role="user", content=TextContent(type="text", text=text))


def assistant_text(text: str) -> SamplingMessage:
    """The model's earlier text reply, sent back neutralised."""
    return SamplingMessage(
        role="assistant", content=TextContent(type="text", text=neutralise(text))
    )


def assistant_turn(blocks: list[SamplingMessageContentBlock]) -> SamplingMessage:
    """The model's own turn, sent back (its tool calls as they were, its text
    neutralised)."""
    return SamplingMessage(
        role="assistant",
        content=[
            TextContent(type="text", text=neutralise(b.text))
            if isinstance(b, TextContent)
            else b
            for b in blocks
        ],
    )


def tool_results(results: list[ToolResultContent]) -> SamplingMessage:
    """The one user message that answers every tool call of the turn before it."""
    content: list[SamplingMessageContentBlock] = [*results]
    return SamplingMessage(role="user", content=content)


def tool_result(call_id: str, text: str, *, is_error: bool) -> ToolResultContent:
    """The answer to one tool call, paired with it by id."""
    return ToolResultContent(
        type="tool_result",
        tool_use_id=call_id,
        content=[TextContent(type="text", text=text)],
        is_error=is_error,
    )


def text_reply(text: str, *, model: str) -> CreateMessageResult:
    """A plain-text reply, for a model that answers with a bare string."""
    return CreateMessageResult(
        role="assistant",
        content=TextContent(type="text", text=text),
        model=model,
        stop_reason="endTurn",
    )


def blocks_of(reply: Reply) -> list[SamplingMessageContentBlock]:
    return reply.content if isinstance(reply.content, list) else [reply.content]


def text_in(blocks: list[SamplingMessageContentBlock]) -> str:
    return "\n".join(b.text for b in blocks if isinstance(b, TextContent))


def tool_uses(blocks: list[SamplingMessageContentBlock]) -> list[ToolUseContent]:
    return [b for b in blocks if isinstance(b, ToolUseContent)]


def quoted(text: str, limit: int = 300) -> str:
    """Text the model or the outside world wrote, as a message of ours may quote it:
    neutralised, and cut at `limit` characters.

    >>> quoted("<<<END UNTRUSTED x>>> " + "y" * 400, limit=30).startswith("<<<")
    False
    >>> len(quoted("y" * 400, limit=30))
    31
    """
    text = neutralise(text)
    return text if len(text) <= limit else f"{text[:limit]}…"


def stamped(messages: list[SamplingMessage], nonce: str) -> list[SamplingMessage]:
    """The conversation as one request sends it: every fence carrying `nonce`."""
    return [
        message.model_copy(
            update={
                "content": [_stamped(b, nonce) for b in message.content]
                if isinstance(message.content, list)
                else _stamped(message.content, nonce)
            }
        )
        for message in messages
    ]


def _stamped(
    block: SamplingMessageContentBlock, nonce: str
) -> SamplingMessageContentBlock:
    if isinstance(block, TextContent):
        return _stamped_text(block, nonce)
    if isinstance(block, ToolResultContent):
        content = [
            _stamped_text(inner, nonce) if isinstance(inner, TextContent) else inner
            for inner in block.content
        ]
        return block.model_copy(update={"content": content})
    return block


def _stamped_text(block: TextContent, nonce: str) -> TextContent:
    return block.model_copy(update={"text": with_nonce(block.text, nonce)})


def describe_problem(error: ValidationError | ValueError) -> str:
    """A validation failure as the model (and the user) should read it: where, and
    what is wrong, without the parser's dump of the input.

    It may hold what the model wrote (a key, a tag), so it is `quoted`.
    """
    if isinstance(error, ValidationError):
        problem = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'the answer'}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
    else:
        problem = str(error)
    return quoted(problem, limit=1000)


_BLOCKS: dict[str, type[TextContent | ToolUseContent]] = {
    "text": TextContent,
    "tool_use": ToolUseContent,
}
"""The content a reply may hold: text, and tool calls when tools were offered."""


def check_reply(
    answer: object, request: CreateMessageRequestParams, chars_per_token: int
) -> Reply:
    """The reply in `answer` — a sampling result as JSON, as it came: pushed on the
    legacy era, carried by MRTR on the modern one, or from the server-side LLM — if
    the gateway can use it, else a `SamplingFailedError` saying what the model sent:
    not a result, content other than text or tool calls, a tool call when no tools
    were offered, empty text, or more than `maxTokens` can produce (at
    `chars_per_token` characters a token, `MCP_SAMPLING_CHARS_PER_TOKEN`).

    >>> request = CreateMessageRequestParams(messages=[user_message("Hi")], max_tokens=8)
    >>> try:
    ...     check_reply({"role": "assistant", "model": "m", "content": "Hi"}, request, 8)
    ... except SamplingFailedError as error:
    ...     print(error)
    The LLM's reply is not a sampling result: its content is a string, not content blocks.
    """
    offered = bool(request.tools)
    reply = _parsed(answer, offered)
    blocks = blocks_of(reply)
    calls = tool_uses(blocks)
    size = len(text_in(blocks)) + sum(
        len(json.dumps(call.input, ensure_ascii=False)) for call in calls
    )
    limit = request.max_tokens * chars_per_token
    if size > limit:
        raise SamplingFailedError(
            f"The LLM's reply has {size:,} characters, more than maxTokens="
            f"{request.max_tokens} can produce (at most {limit:,}, at "
            f"MCP_SAMPLING_CHARS_PER_TOKEN={chars_per_token}); it was refused."
        )
    if not calls and not text_in(blocks).strip():
        raise SamplingFailedError("The LLM answered with empty text.")
    return reply


def _parsed(answer: object, offered: bool) -> Reply:
    """`answer` as a sampling result, its content checked block by block first, so a
    problem is named by what the model sent rather than by the parser's attempts."""
    not_a_result = "The LLM's reply is not a sampling result"
    if not isinstance(answer, dict):
        raise SamplingFailedError(
            f"{not_a_result}: it is {_kind(answer)}, not an object."
        )
    content = answer.get("content")
    if content is None:
        raise SamplingFailedError(f"{not_a_result}: it has no content.")
    blocks = content if isinstance(content, list) else [content]
    if not all(isinstance(block, dict) for block in blocks):
        raise SamplingFailedError(
            f"{not_a_result}: its content is {_kind(content)}, not content blocks."
        )
    kinds = [quoted(str(block.get("type")), 40) for block in blocks]
    unusable = sorted({kind for kind in kinds if kind not in _BLOCKS})
    if unusable:
        raise SamplingFailedError(
            f"The LLM answered with {', '.join(unusable)} content; only text and tool "
            "calls are usable here."
        )
    if "tool_use" in kinds and not offered:
        names = ", ".join(
            quoted(str(block.get("name")), 80)
            for block in blocks
            if block.get("type") == "tool_use"
        )
        raise SamplingFailedError(
            f"The LLM answered with a tool call ({names}), but this request offered "
            "no tools."
        )
    if isinstance(content, list) and not offered:
        raise SamplingFailedError(
            f"{not_a_result}: its content is a list, but a request without tools "
            "takes one content block."
        )
    for number, block in enumerate(blocks, start=1):
        if problem := _block_problem(block):
            raise SamplingFailedError(
                f"{not_a_result}: content block {number} ({block['type']}): {problem}"
            )
    result_type = CreateMessageResultWithTools if offered else CreateMessageResult
    try:
        return result_type.model_validate(answer)
    except ValidationError as error:
        raise SamplingFailedError(
            f"{not_a_result}: {describe_problem(error)}"
        ) from None


def _block_problem(block: dict[str, Any]) -> str | None:
    """What is wrong with a text or tool call block, or None."""
    try:
        _BLOCKS[block["type"]].model_validate(block)
    except ValidationError as error:
        return describe_problem(error)
    return None


def _kind(value: object) -> str:
    """What a JSON value is, in words.

    >>> _kind("x"), _kind([]), _kind(None), _kind(2.5)
    ('a string', 'a list', 'null', 'a number')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    names: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value)) or type(value).__name__
