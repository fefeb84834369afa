"""How one sampling request reaches a model: the client's, or the server's own.

`LLM.sample` picks the route and applies the bounds; these functions only deliver the
request and turn every way it can fail into one `LLMError` with a clear message.
"""

from __future__ import annotations

import inspect

import anyio
from fastmcp import Context
from mcp.shared.exceptions import McpError
from mcp.types import (
    CancelledNotification,
    CancelledNotificationParams,
    CreateMessageRequestParams,
    ServerNotification,
)

from ._errors import LLMError, SamplingFailedError
from ._messages import Reply, text_reply


async def ask_client(ctx: Context, params: CreateMessageRequestParams) -> Reply:
    """Send the request to the client's LLM (`sampling/createMessage`)."""
    session = ctx.session
    # mcp 1.x allocates the id inside create_message without exposing it; no
    # await comes before that, so reading the next id here names this request.
    request_id = session._request_id
    try:
        return await session.create_message(
            messages=params.messages,
            system_prompt=params.systemPrompt,
            temperature=params.temperature,
            max_tokens=params.maxTokens,
            tools=params.tools,
            tool_choice=params.toolChoice,
            related_request_id=ctx.request_id,
        )
    except McpError as error:
        raise SamplingFailedError(
            f"The client's LLM did not answer: {error.error.message}"
        ) from None
    except anyio.get_cancelled_exc_class():
        # The SDK abandons the request silently; tell the client to stop its LLM.
        with anyio.CancelScope(shield=True):
            await session.send_notification(
                ServerNotification(
                    CancelledNotification(
                        params=CancelledNotificationParams(
                            requestId=request_id,
                            reason="The tool call that asked for it ended.",
                        )
                    )
                )
            )
        raise


async def ask_server(ctx: Context, params: CreateMessageRequestParams) -> Reply:
    """Send the request to the server-side LLM (a FastMCP sampling handler)."""
    handler = ctx.fastmcp.sampling_handler
    if handler is None:
        raise SamplingFailedError("This server has no server-side LLM.")
    try:
        answer = handler(params.messages, params, ctx.request_context)
        if inspect.isawaitable(answer):
            answer = await answer
    except LLMError:
        raise
    # Whatever the handler's provider raises becomes one clear tool error.
    except Exception as error:  # noqa: BLE001
        raise SamplingFailedError(
            f"The server-side LLM failed: {type(error).__name__}: {error}"
        ) from None
    if isinstance(answer, str):
        return text_reply(answer, model="server-side")
    return answer
