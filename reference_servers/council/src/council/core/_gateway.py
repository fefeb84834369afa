"""The LLM gateway: every request this server makes for model output passes here.

One `LLM` serves one tool call. It decides where a request goes, in this order:

1. the client's own LLM through MCP sampling — `Route.CLIENT_WITH_TOOLS` when the client
   declares `sampling.tools` (SEP-1577), `Route.CLIENT_TEXT_ONLY` when it samples text —
   pushed to the client on the legacy era (2025-11-25 sessions), carried by MRTR on the
   modern era (2026-07-28, see `_replay.py`); the code that asks is the same;
2. the server-side LLM, when the server has one (`MCP_SAMPLING_PROVIDER`, see
   `_server_llm.py`, or `create_server(sampling_handler=...)`) — `Route.SERVER`; with
   `MCP_SAMPLING_MODE=always` it comes first and serves every request;
3. otherwise a `SamplingUnavailableError` that says what is missing and how to fix it.

On the modern era a tool call's code runs again on every round, so whatever would
differ between runs comes from the gateway: `llm.random`, `llm.now()`, `llm.new_id()`,
and `await llm.step(...)` for a read of the outside world. On the legacy era they are
the ordinary random source, clock and ids, and `step` simply calls the function.

It bounds every request (a timeout, an explicit `maxTokens`, a limit on requests in
flight), counts them, and, when the tool call is cancelled, cancels the requests still
waiting on the client. Untrusted text reaches it only inside a `Prompt`, fenced.

`LLM` is a thin facade: `complete` is one request, `structured` runs the loop in
`_structured.py`, `run_agent` the loop in `_agent.py`, and `sample` sends one request
through `_transports.py`. `map` is the one way to run model work concurrently.

    llm = LLM(ctx, gateway)
    summary = await llm.complete(
        Prompt("Summarise the document.", document=text),
        system="You write precise summaries.",
        max_tokens=400,
    )
"""

from __future__ import annotations

import enum
import logging
import random
import time
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import anyio
from fastmcp import Context
from mcp.types import (
    CreateMessageRequestParams,
    SamplingMessage,
    Tool,
    ToolChoice,
)

from ._agent import AgentResult, Check, run_agent_loop
from ._errors import SamplingTimeoutError, SamplingUnavailableError
from ._identity import current_principal
from ._messages import (
    Reply,
    blocks_of,
    check_reply,
    stamped,
    text_in,
    user_message,
)
from ._prompting import Prompt, new_nonce, with_nonce
from ._replay import current_round
from ._settings import GatewaySettings
from ._structured import ask_structured
from ._tracing import record_reply, sampling_span
from ._transports import ask_client, ask_server
from ._usage import Usage

logger = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")


class Route(enum.Enum):
    """Where the gateway sends a request for model output."""

    CLIENT_WITH_TOOLS = "the client's LLM, with sampling tools"
    CLIENT_TEXT_ONLY = "the client's LLM, text only"
    SERVER = "the server-side LLM"

    @property
    def native_tools(self) -> bool:
        """Whether the model can be offered tools (else they are emulated in text)."""
        return self is not Route.CLIENT_TEXT_ONLY


class LLM:
    """The gateway for one tool call: route, bound, count and cancel model requests."""

    def __init__(self, ctx: Context, settings: GatewaySettings) -> None:
        self._ctx = ctx
        self.settings = settings
        """The gateway's bounds (`MCP_SAMPLING_*`)."""
        self._slots = anyio.Semaphore(settings.max_concurrency)
        self._round = current_round()
        self._server_llm = getattr(ctx.fastmcp, "server_llm", None)
        self._usage: Usage | None = getattr(ctx.fastmcp, "usage", None)
        self.calls_made = 0
        """Sampling requests sent so far, failed ones included."""

    @property
    def era(self) -> str:
        """`modern` (MCP 2026-07-28, MRTR) or `legacy` (a 2025-11-25 session)."""
        return "legacy" if self._round is None else "modern"

    @property
    def route(self) -> Route:
        """Where requests go; raises `SamplingUnavailableError` when nowhere.

        The server checks what the client declared itself: on the modern era the SDK
        does not, and a client asked for tools it never offered may still answer.
        """
        return route_of(self._ctx, self.settings)

    @property
    def random(self) -> random.Random:
        """A random source that gives the same draws on every run of a modern call."""
        return self._round.random if self._round else _SYSTEM_RANDOM

    def now(self) -> float:
        """The time (`time.time()`), frozen at a modern call's first round."""
        return self._round.clock if self._round else time.time()

    def new_id(self) -> str:
        """A fresh id: 12 hex digits, the same on every run of a modern call."""
        return self._round.new_id() if self._round else uuid.uuid4().hex[:12]

    async def step(
        self, name: str, function: Callable[..., Awaitable[T]], *args: Any
    ) -> T:
        """`await function(*args)`, run once per tool call: on the modern era its
        result (JSON-able, as its return annotation says) travels in the state and
        later runs get it back. Use it to read the outside world."""
        if self._round is None:
            return await function(*args)
        kind = typing.get_type_hints(function).get("return", Any)
        return await self._round.step(name, function, args, kind)

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
        return text_in(blocks_of(reply))

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
        return await ask_structured(
            self,
            prompt,
            result_type,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
        )

    async def run_agent(
        self,
        task: Prompt,
        *,
        tools: Sequence[Callable[..., Any]],
        result_type: type[T],
        max_iterations: int | None = None,
        check: Check[T] | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> AgentResult[T]:
        """Let the model work on `task` with `tools` until it gives a `result_type`.

        Each iteration is one sampling request; the tools the model asks for run here,
        concurrently, and their results go back fenced. `max_iterations` (default and
        ceiling `MCP_SAMPLING_MAX_ITERATIONS`) and `MCP_SAMPLING_MAX_TOOL_CALLS` bound
        the loop; past either, an `AgentLimitError` (never a partial answer).
        `check(answer, calls)` may reject a valid answer with a problem to send back,
        like a validation error, knowing the tool calls that succeeded in the run (a
        tool's own state would not survive a modern call's replays); invalid answers
        count against `MCP_SAMPLING_MAX_RETRIES`.
        """
        return await run_agent_loop(
            self,
            task,
            tools=tools,
            result_type=result_type,
            max_iterations=max_iterations,
            check=check,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
        )

    async def map(
        self, function: Callable[[Item], Awaitable[T]], items: Iterable[Item]
    ) -> list[T]:
        """`function(item)` for every item at once; the results in the items' order.

        The one way to run model work concurrently: the requests inside still wait for
        the gateway's slots (`MCP_SAMPLING_MAX_CONCURRENCY`). The first failure ends
        the whole map: the other calls are cancelled and the failure is raised as
        itself, so an `LLMError` reaches the client with its own message, never inside
        an exception group. A call whose failure must not end the others (a council
        member who may be absent) catches its own `LLMError`.
        """
        items = list(items)
        results: list[Any] = [None] * len(items)
        failures: list[Exception] = []
        finished = 0
        if self._round is not None and items:
            self._round.spawn(len(items))

        async def run(index: int) -> None:
            nonlocal finished
            try:
                results[index] = await function(items[index])
            except Exception as error:  # noqa: BLE001 - re-raised below, as itself
                failures.append(error)
                group.cancel_scope.cancel()
                return
            finished += 1
            if self._round is not None:
                self._round.child_done(last=finished == len(items))

        async with anyio.create_task_group() as group:
            for index in range(len(items)):
                group.start_soon(run, index)
        if failures:
            raise failures[0]
        return results

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Tell the client how far the tool call has got (a progress notification).

        On the modern era, only once however many runs reach this point; and while
        the client's LLM answers by MRTR, with the round's answer, not before it: a
        round takes milliseconds (the waits are the client's, between rounds), and a
        round answered in one piece may be retried by a proxy when its replica dies
        before answering (see `_replay.py`). With the server-side LLM a round does
        wait on a model, so its progress goes out as it happens.
        """
        if self._round is not None:
            self._round.progress += 1
            if self._round.progress <= self._round.progress_sent:
                return
            if not self._served_by_server_llm():
                self._round.held_progress.append((progress, total, message))
                return
        await self._ctx.report_progress(progress, total, message)

    def _served_by_server_llm(self) -> bool:
        try:
            return self.route is Route.SERVER
        except SamplingUnavailableError:
            return False

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
        pattern that needs several turns calls it with the history it owns. The
        request draws a fresh nonce for every fence it carries, and a reply the gateway
        cannot use is a `SamplingFailedError` saying what the model sent.
        """
        route = self.route
        request = CreateMessageRequestParams(
            messages=messages,
            system_prompt=system,
            temperature=temperature,
            max_tokens=max_tokens or self.settings.max_tokens,
            tools=tools,
            tool_choice=tool_choice,
        )
        if self._round is not None and route is not Route.SERVER:
            return await self._by_replay(request)
        params = _stamped(request, new_nonce())
        async with self._slots:
            self.calls_made += 1
            logger.debug("sampling request %d via %s", self.calls_made, route.value)
            with self._span(route, params) as span:
                # The operator pays for the server-side LLM: within the user's budget.
                reservation = (
                    await self._usage.reserve(current_principal(), params)
                    if route is Route.SERVER and self._usage is not None
                    else None
                )
                reply = None
                try:
                    with anyio.fail_after(self.settings.timeout):
                        if route is Route.SERVER:
                            answer = await ask_server(
                                self._server_llm, self._ctx, params
                            )
                        else:
                            answer = await ask_client(self._ctx, params)
                    reply = check_reply(answer, params, self.settings.chars_per_token)
                except TimeoutError:
                    raise SamplingTimeoutError(
                        f"{_sentence_case(route.value)} did not answer within "
                        f"{self.settings.timeout:g} s (MCP_SAMPLING_TIMEOUT)."
                    ) from None
                finally:
                    if reservation is not None and self._usage is not None:
                        with anyio.CancelScope(shield=True):
                            await self._usage.settle(reservation, reply)
                record_reply(span, reply)
                return reply

    async def _by_replay(self, request: CreateMessageRequestParams) -> Reply:
        """The modern era: the journal's answer, or park until the next round.

        Only a request that is sent (parked) or answered in this round is stamped
        with its nonce: a replay passes every earlier request again.
        """
        assert self._round is not None
        key = self._round.key(
            "sample", request.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
        self.calls_made += 1

        def check(answer: object) -> Reply:
            return check_reply(answer, request, self.settings.chars_per_token)

        if not self._round.answered(key):
            logger.debug("sampling request %d asked by MRTR", self.calls_made)
            await self._round.park(key, _stamped(request, self._round.nonce(key)))
        if not self._round.arrived(key):
            return self._round.reply(key, check)
        # Its span once, in the round its answer came.
        with self._span(self.route, _stamped(request, self._round.nonce(key))) as span:
            reply = self._round.reply(key, check)
            record_reply(span, reply)
            return reply

    def _span(self, route: Route, params: CreateMessageRequestParams) -> Any:
        return sampling_span(
            route=route.name,
            era=self.era,
            attempt=self.calls_made,
            request=params,
        )


_SYSTEM_RANDOM = random.SystemRandom()


def route_of(ctx: Context, settings: GatewaySettings) -> Route:
    """Where a request of the call `ctx` serves goes (see `LLM.route`)."""
    server_llm = getattr(ctx.fastmcp, "server_llm", None)
    capabilities = ctx.session.client_capabilities
    sampling = capabilities.sampling if capabilities else None
    if server_llm is not None and settings.mode == "always":
        return Route.SERVER
    if sampling is not None and sampling.tools is not None:
        return Route.CLIENT_WITH_TOOLS
    if sampling is not None:
        return Route.CLIENT_TEXT_ONLY
    if server_llm is not None:
        return Route.SERVER
    raise SamplingUnavailableError()


def _stamped(
    request: CreateMessageRequestParams, nonce: str
) -> CreateMessageRequestParams:
    """The request as sent: every fence carrying `nonce`."""
    return request.model_copy(
        update={
            "messages": stamped(request.messages, nonce),
            "system_prompt": with_nonce(request.system_prompt, nonce)
            if request.system_prompt
            else None,
        }
    )


def _sentence_case(text: str) -> str:
    """`text` with its first letter upper case and the rest as it was.

    >>> _sentence_case("the client's LLM, text only")
    "The client's LLM, text only"
    """
    return text[:1].upper() + text[1:]
