"""How one sampling request reaches a model: the client's, or the server's own.

`LLM.sample` picks the route and applies the bounds; these functions only deliver the
request and turn every way it can fail into one `LLMError` with a clear message. On
the legacy era the request is pushed to the client (`sampling/createMessage` on its
session); on the modern era it travels by MRTR (`_replay.py`).
"""

from __future__ import annotations

import inspect

from fastmcp import Context
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
)
from pydantic import ValidationError

from ._errors import LLMError, SamplingFailedError
from ._messages import Reply, quoted, text_reply
from ._structured import describe_problem


async def ask_client(ctx: Context, params: CreateMessageRequestParams) -> Reply:
    """Push the request to the client's LLM (legacy era).

    When the caller gives up (the tool call ended, a sibling request failed, the
    timeout), the SDK tells the client to stop (`notifications/cancelled`).
    """
    try:
        return await ctx.session.create_message(
            params.messages,
            max_tokens=params.max_tokens,
            system_prompt=params.system_prompt,
            temperature=params.temperature,
            tools=params.tools,
            tool_choice=params.tool_choice,
            related_request_id=ctx.request_id,
        )
    except MCPError as error:
        raise SamplingFailedError(
            f"The client's LLM did not answer: {quoted(error.error.message)}"
        ) from None
    except ValidationError as error:  # the SDK could not read the reply
        raise SamplingFailedError(_unreadable(error, params)) from None


def _unreadable(error: ValidationError, params: CreateMessageRequestParams) -> str:
    """What the client sent instead of a sampling result, as far as it can be told."""
    sent = [problem["input"] for problem in error.errors(include_url=False)]
    if not params.tools and _holds_tool_use(sent):
        return (
            "The client's LLM answered with a tool call, but this request offered "
            "no tools."
        )
    return (
        "The client's LLM sent a reply that is not a sampling result: "
        f"{describe_problem(error)}"
    )


def _holds_tool_use(value: object) -> bool:
    if isinstance(value, dict):
        return value.get("type") == "tool_use" or _holds_tool_use(list(value.values()))
    return isinstance(value, list) and any(_holds_tool_use(item) for item in value)


async def ask_server(
    handler: object, ctx: Context, params: CreateMessageRequestParams
) -> Reply:
    """Send the request to the server-side LLM (a sampling handler)."""
    try:
        answer = handler(params.messages, params, ctx.request_context)  # type: ignore[operator]
        if inspect.isawaitable(answer):
            answer = await answer
    except LLMError:
        raise
    # Whatever the handler's provider raises becomes one clear tool error.
    except Exception as error:  # noqa: BLE001
        raise SamplingFailedError(
            f"The server-side LLM failed: {type(error).__name__}: {quoted(str(error))}"
        ) from None
    if isinstance(answer, str):
        return text_reply(answer, model="server-side")
    if not isinstance(answer, CreateMessageResult | CreateMessageResultWithTools):
        raise SamplingFailedError(
            f"The server-side LLM answered with a {type(answer).__name__}, not a "
            "sampling result."
        )
    return answer
