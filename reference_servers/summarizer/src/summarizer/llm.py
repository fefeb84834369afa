"""The LLM gateway: every request this server makes for model output passes here.

One `LLM` serves one tool call. It decides where a request goes, in this order:

1. the client's own LLM through MCP sampling — `Route.CLIENT_WITH_TOOLS` when the client
   declares `sampling.tools` (SEP-1577), `Route.CLIENT_TEXT_ONLY` when it samples text;
2. the server-side LLM, when the server has one (`MCP_SAMPLING_PROVIDER`, see
   `server_llm.py`, or `create_server(sampling_handler=...)`) — `Route.SERVER`; with
   `MCP_SAMPLING_MODE=always` it comes first and serves every request;
3. otherwise a `SamplingUnavailableError` that says what is missing and how to fix it.

It bounds every request (a timeout, an explicit `maxTokens`, a limit on requests in
flight), counts them, and, when the tool call is cancelled, cancels the requests still
waiting on the client. Untrusted text reaches it only inside a `Prompt`, fenced.

    llm = LLM(ctx, GatewaySettings())
    summary = await llm.complete(
        Prompt("Summarise the document.", document=text),
        system="You write precise summaries.",
        max_tokens=400,
    )
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
from fastmcp import Context
from mcp.shared.exceptions import McpError
from mcp.types import (
    CancelledNotification,
    CancelledNotificationParams,
    ClientCapabilities,
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    SamplingCapability,
    SamplingMessage,
    SamplingToolsCapability,
    ServerNotification,
    TextContent,
    Tool,
    ToolChoice,
)

from .agent import (
    AgentResult,
    Toolbox,
    accept,
    emulated_follow_up,
    native_follow_up,
    protocol_instructions,
    read_emulated_turn,
    read_native_turn,
    user_message,
)
from .config import GatewaySettings
from .errors import (
    AgentLimitError,
    LLMError,
    SamplingFailedError,
    SamplingTimeoutError,
    SamplingUnavailableError,
    StructuredOutputError,
)
from .prompting import Prompt
from .structured import ResultSpec, read_reply, text_in

logger = logging.getLogger(__name__)

Reply = CreateMessageResult | CreateMessageResultWithTools
T = TypeVar("T")


class Route(enum.Enum):
    """Where the gateway sends a request for model output."""

    CLIENT_WITH_TOOLS = "the client's LLM, with sampling tools"
    CLIENT_TEXT_ONLY = "the client's LLM, text only"
    SERVER = "the server-side LLM"


class LLM:
    """The gateway for one tool call: route, bound, count and cancel model requests."""

    def __init__(self, ctx: Context, settings: GatewaySettings) -> None:
        self._ctx = ctx
        self._settings = settings
        self._slots = anyio.Semaphore(settings.max_concurrency)
        self.calls_made = 0
        """Sampling requests sent so far, failed ones included."""

    @property
    def route(self) -> Route:
        """Where requests go; raises `SamplingUnavailableError` when nowhere."""
        session = self._ctx.session
        has_server_llm = self._ctx.fastmcp.sampling_handler is not None
        if has_server_llm and self._settings.mode == "always":
            return Route.SERVER
        if session.check_client_capability(
            ClientCapabilities(
                sampling=SamplingCapability(tools=SamplingToolsCapability())
            )
        ):
            return Route.CLIENT_WITH_TOOLS
        if session.check_client_capability(
            ClientCapabilities(sampling=SamplingCapability())
        ):
            return Route.CLIENT_TEXT_ONLY
        if has_server_llm:
            return Route.SERVER
        raise SamplingUnavailableError()

    async def complete(
        self,
        prompt: Prompt,
        *,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """Ask for plain text; returns the model's reply."""
        reply = await self.sample(
            [user_message(prompt.text)],
            system=prompt.system(system),
            temperature=temperature,
            max_tokens=max_tokens,
        )
        return _text_of(reply)

    async def structured(
        self,
        prompt: Prompt,
        *,
        result_type: type[T],
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> T:
        """Ask for a validated `result_type`, on every route.

        With sampling tools (the client's, or the server-side LLM's), the model answers
        by calling a `final_response` tool; with text-only sampling, the schema goes into
        the system prompt and the JSON is read out of the reply. Either way an invalid
        answer goes back to the model with the validation errors, at most
        `MCP_SAMPLING_MAX_RETRIES` times, then a `StructuredOutputError` says what the
        model kept getting wrong.
        """
        spec = ResultSpec(result_type)
        native = self.route is not Route.CLIENT_TEXT_ONLY
        system = prompt.system(system)
        if not native:
            system = "\n\n".join(filter(None, [system, spec.instructions()]))
        conversation = [user_message(prompt.text)]
        for _attempt in range(self._settings.max_retries + 1):
            reply = await self.sample(
                conversation,
                system=system,
                temperature=temperature,
                max_tokens=max_tokens,
                tools=[spec.tool()] if native else None,
                tool_choice=ToolChoice(mode="required") if native else None,
            )
            attempt = read_reply(spec, _blocks_of(reply), native=native)
            if attempt.problem is None:
                return attempt.result
            conversation += attempt.follow_up
        raise StructuredOutputError(
            f"The LLM gave no valid {spec.name} in {self._settings.max_retries + 1} "
            f"attempts (MCP_SAMPLING_MAX_RETRIES={self._settings.max_retries}). "
            f"The last answer's problem: {attempt.problem}"
        )

    async def run_agent(
        self,
        task: Prompt,
        *,
        tools: Sequence[Callable[..., Any]],
        result_type: type[T],
        max_iterations: int | None = None,
        check: Callable[[T], str | None] | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> AgentResult[T]:
        """Let the model work on `task` with `tools` until it gives a `result_type`.

        Each iteration is one sampling request; the tools the model asks for run here,
        concurrently, and their results go back fenced. `max_iterations` (default and
        ceiling `MCP_SAMPLING_MAX_ITERATIONS`) and `MCP_SAMPLING_MAX_TOOL_CALLS` bound
        the loop; past either, an `AgentLimitError` (never a partial answer). `check`
        may reject a valid answer with a problem to send back, like a validation error;
        invalid answers count against `MCP_SAMPLING_MAX_RETRIES`.
        """
        limit = self._iteration_limit(max_iterations)
        spec = ResultSpec(result_type)
        toolbox = Toolbox(
            tools, nonce=task.nonce, concurrency=self._settings.tool_concurrency
        )
        native = self.route is not Route.CLIENT_TEXT_ONLY
        system = task.system(system, fenced_replies=True)
        if not native:
            system = f"{system}\n\n{protocol_instructions(toolbox, spec)}"
        sampling_tools = [*toolbox.sdk_tools(), spec.tool()] if native else None
        conversation = [user_message(task.text)]
        tool_calls = 0
        rejected_answers = 0
        for iteration in range(1, limit + 1):
            reply = await self.sample(
                conversation,
                system=system,
                temperature=temperature,
                max_tokens=max_tokens,
                tools=sampling_tools,
                tool_choice=ToolChoice(mode="required") if native else None,
            )
            blocks = _blocks_of(reply)
            turn = (
                read_native_turn(blocks)
                if native
                else read_emulated_turn(text_in(blocks), f"call-{iteration}")
            )
            if turn.has_answer:
                result, turn.problem = accept(spec, turn.answer, check)
                if turn.problem is None:
                    return AgentResult(result, iteration, tool_calls)
                rejected_answers += 1
                if rejected_answers > self._settings.max_retries:
                    raise StructuredOutputError(
                        f"The agent's answer was rejected {rejected_answers} times "
                        f"(MCP_SAMPLING_MAX_RETRIES={self._settings.max_retries}); "
                        f"the last problem: {turn.problem}"
                    )
            tool_calls += len(turn.calls)
            if tool_calls > self._settings.max_tool_calls:
                raise AgentLimitError(
                    f"The agent asked for more than {self._settings.max_tool_calls} "
                    "tool calls (MCP_SAMPLING_MAX_TOOL_CALLS) without finishing."
                )
            outcomes = await toolbox.run(turn.calls)
            conversation += (
                native_follow_up(blocks, turn, outcomes)
                if native
                else emulated_follow_up(text_in(blocks), turn, outcomes)
            )
            called = ", ".join(call.name for call in turn.calls) or "no tool"
            await self._ctx.report_progress(
                iteration, limit, f"iteration {iteration}: {called}"
            )
        raise AgentLimitError(
            f"The agent did not finish within {limit} iterations "
            f"(max_iterations); it made {tool_calls} tool calls. Allow more "
            f"iterations (at most MCP_SAMPLING_MAX_ITERATIONS="
            f"{self._settings.max_iterations}) or narrow the task."
        )

    def _iteration_limit(self, requested: int | None) -> int:
        ceiling = self._settings.max_iterations
        if requested is None:
            return ceiling
        if not 1 <= requested <= ceiling:
            raise AgentLimitError(
                f"max_iterations must be between 1 and {ceiling} "
                f"(MCP_SAMPLING_MAX_ITERATIONS); got {requested}."
            )
        return requested

    async def sample(
        self,
        messages: list[SamplingMessage],
        *,
        system: str | None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        tools: list[Tool] | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> Reply:
        """Send one sampling request along the route, within the gateway's bounds.

        The building block of `complete` and of the structured and agent loops; a
        pattern that needs several turns calls it with the history it owns.
        """
        route = self.route
        params = CreateMessageRequestParams(
            messages=messages,
            systemPrompt=system,
            temperature=temperature,
            maxTokens=max_tokens or self._settings.max_tokens,
            tools=tools,
            toolChoice=tool_choice,
        )
        async with self._slots:
            self.calls_made += 1
            logger.debug("sampling request %d via %s", self.calls_made, route.value)
            try:
                with anyio.fail_after(self._settings.timeout):
                    if route is Route.SERVER:
                        return await self._ask_server(params)
                    return await self._ask_client(params)
            except TimeoutError:
                raise SamplingTimeoutError(
                    f"{route.value.capitalize()} did not answer within "
                    f"{self._settings.timeout:g} s (MCP_SAMPLING_TIMEOUT)."
                ) from None

    async def _ask_client(self, params: CreateMessageRequestParams) -> Reply:
        session = self._ctx.session
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
                related_request_id=self._ctx.request_id,
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

    async def _ask_server(self, params: CreateMessageRequestParams) -> Reply:
        handler = self._ctx.fastmcp.sampling_handler
        assert handler is not None  # `route` chose SERVER because there is one
        try:
            answer = handler(params.messages, params, self._ctx.request_context)
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
            return CreateMessageResult(
                role="assistant",
                content=TextContent(type="text", text=answer),
                model="server-side",
                stopReason="endTurn",
            )
        return answer


def _blocks_of(reply: Reply) -> list:
    return reply.content if isinstance(reply.content, list) else [reply.content]


def _text_of(reply: Reply) -> str:
    text = text_in(_blocks_of(reply))
    if not text:
        kinds = ", ".join(sorted({b.type for b in _blocks_of(reply)})) or "nothing"
        raise SamplingFailedError(f"The LLM answered without text (got {kinds}).")
    return text
