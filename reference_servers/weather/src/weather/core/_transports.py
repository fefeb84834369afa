"""How one sampling request reaches a model: the client's, or the server's own.

`LLM.sample` picks the route and applies the bounds; these functions only deliver the
request and bring back the answer as JSON, unread: the gateway reads every answer the
same way (`check_reply`), whichever era or route brought it. A failure to get an
answer at all is one `LLMError` with a clear message. On the legacy era the request is
pushed to the client (`sampling/createMessage` on its session); on the modern era it
travels by MRTR (`_replay.py`).
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

from ._errors import LLMError, SamplingFailedError
from ._messages import quoted, text_reply


async def ask_client(ctx: Context, params: CreateMessageRequestParams) -> object:
    """Push the request to the client's LLM (legacy era); its answer as sent.

    The SDK's typed `create_message` would read the answer itself, and an answer it
    cannot read would fail with pydantic's dump instead of the gateway's message (the
    modern era's answers are not read by the SDK either: `_replay.RawAnswers`). mcp 2.x
    has no public way to send a request on the tool call's own channel without reading
    its result; `_request_outbound` is that channel (mcp is pinned below 3).

    When the caller gives up (the tool call ended, a sibling request failed, the
    timeout), the SDK tells the client to stop (`notifications/cancelled`).
    """
    try:
        return await ctx.session._request_outbound.send_raw_request(
            "sampling/createMessage",
            params.model_dump(by_alias=True, mode="json", exclude_none=True),
        )
    except MCPError as error:
        raise SamplingFailedError(
            f"The client's LLM did not answer: {quoted(error.error.message)}"
        ) from None


async def ask_server(
    handler: object, ctx: Context, params: CreateMessageRequestParams
) -> object:
    """Send the request to the server-side LLM (a sampling handler); its answer as
    JSON."""
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
        answer = text_reply(answer, model="server-side")
    if not isinstance(answer, CreateMessageResult | CreateMessageResultWithTools):
        raise SamplingFailedError(
            f"The server-side LLM answered with a {type(answer).__name__}, not a "
            "sampling result."
        )
    return answer.model_dump(by_alias=True, mode="json", exclude_none=True)
