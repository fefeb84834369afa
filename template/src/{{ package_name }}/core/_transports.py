"""How one sampling request reaches a model: the client's, or the server's own.

`LLM.sample` picks the route and applies the bounds; these functions only deliver the
request and turn every way it can fail into one `LLMError` with a clear message.
"""

from __future__ import annotations

import inspect

import anyio
from fastmcp import Context
from mcp.server.session import ServerSession
from mcp.shared.exceptions import McpError
from mcp.types import (
    CancelledNotification,
    CancelledNotificationParams,
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    RequestId,
    ServerNotification,
)
from pydantic import ValidationError

from ._errors import LLMError, SamplingFailedError
from ._messages import Reply, quoted, text_reply
from ._structured import describe_problem


async def ask_client(
    ctx: Context, params: CreateMessageRequestParams, *, timeout: float
) -> Reply:
    """Send the request to the client's LLM (`sampling/createMessage`).

    When the caller gives up (the tool call ended, a sibling request failed, the
    timeout), the client is told to stop (`notifications/cancelled`), which the SDK
    does not do. The SDK's own wait for the reply is never cancelled, though: in mcp
    1.x, a reply that arrives while its waiter is being cancelled ends the session's
    receive loop (it closes the reply stream the loop is writing to), and every other
    request of the session hangs up with "Connection closed". So the wait runs in the
    session's task group, bounded by `timeout`, and is merely abandoned here.
    """
    session = ctx.session
    request = _ClientRequest()

    async def wait_for_reply() -> None:
        try:
            if request.abandoned:
                return  # given up before it was sent: never send it
            # mcp 1.x allocates the id inside create_message without exposing it;
            # no await comes before that, so the next id names this request.
            request.id = session._request_id
            with anyio.move_on_after(timeout):
                request.reply = await session.create_message(
                    messages=params.messages,
                    system_prompt=params.systemPrompt,
                    temperature=params.temperature,
                    max_tokens=params.maxTokens,
                    tools=params.tools,
                    tool_choice=params.toolChoice,
                    related_request_id=ctx.request_id,
                )
        except Exception as error:  # noqa: BLE001 - handed to the caller below
            request.error = error
        finally:
            request.done.set()

    session._task_group.start_soon(wait_for_reply)
    try:
        await request.done.wait()
    except anyio.get_cancelled_exc_class():
        request.abandoned = True
        if request.id is not None and not request.done.is_set():
            with anyio.CancelScope(shield=True):
                await _tell_client_to_stop(session, request.id)
        raise
    if isinstance(request.error, McpError):
        raise SamplingFailedError(
            f"The client's LLM did not answer: {quoted(request.error.error.message)}"
        )
    if isinstance(request.error, ValidationError):  # the SDK could not read the reply
        raise SamplingFailedError(_unreadable(request.error, params))
    if request.error is not None:
        raise request.error
    if request.reply is None:  # the bounded wait ran out
        raise TimeoutError
    return request.reply


class _ClientRequest:
    """One request to the client, as its detached waiter and its caller share it."""

    def __init__(self) -> None:
        self.id: RequestId | None = None
        self.reply: Reply | None = None
        self.error: Exception | None = None
        self.abandoned = False
        self.done = anyio.Event()


async def _tell_client_to_stop(session: ServerSession, request_id: RequestId) -> None:
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
