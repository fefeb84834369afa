"""Agent loops: the model calls the server's tools, and the server owns the loop.

`LLM.run_agent` runs `run_agent_loop`; the rest of this module is its parts: the
`Toolbox` that describes and runs plain Python functions as sampling tools, and how each
reply is read as a `Turn`. With sampling tools the model calls tools natively (SEP-1577); with
text-only sampling it follows a JSON action protocol, one object per reply:

    {"action": "call", "tool": "search", "arguments": {"query": "solar"}}
    {"action": "final", "answer": {...}}

Both paths have the same semantics: several calls in a turn run concurrently (bounded);
an unknown tool, invalid arguments or a tool that raises give an error result and the
loop goes on; tool output goes back to the model fenced, as untrusted text.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar, cast

import anyio
from mcp.types import (
    SamplingMessage,
    SamplingMessageContentBlock,
    Tool,
    ToolChoice,
    ToolResultContent,
)
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, validate_call

from ._errors import AgentLimitError, StructuredOutputError
from ._messages import (
    assistant_text,
    assistant_turn,
    blocks_of,
    describe_problem,
    quoted,
    text_in,
    tool_result,
    tool_results,
    tool_uses,
    user_message,
)
from ._prompting import fence
from ._structured import (
    FINAL_RESPONSE,
    Accepted,
    ResultSpec,
    extract_json,
)
from ._tracing import tool_span

if TYPE_CHECKING:
    from ._gateway import LLM
    from ._prompting import Prompt

T = TypeVar("T")
_NO_ANSWER = object()

EMULATED_PROTOCOL = "You work in steps. Each reply must be exactly one JSON object"
"""How the emulated protocol's system prompt begins."""


@dataclass(frozen=True)
class AgentResult(Generic[T]):
    """An agent's answer and what it took."""

    result: T
    iterations: int
    tool_calls: int


@dataclass(frozen=True)
class Call:
    """One tool call requested by the model."""

    id: str
    name: str
    arguments: dict[str, Any]


Check = Callable[[T, list[Call]], "str | None"]
"""Rejects a valid answer with a problem to send back (or accepts it: None), knowing
the tool calls that succeeded so far in the run."""


@dataclass(frozen=True)
class Outcome:
    """A tool call's result, as the model will read it."""

    call: Call
    text: str
    is_error: bool


@dataclass
class Turn:
    """What one reply asks for: tool calls, a final answer, or neither (a problem)."""

    calls: list[Call] = field(default_factory=list)
    answer: Any = _NO_ANSWER
    final_call: Call | None = None
    problem: str | None = None

    @property
    def has_answer(self) -> bool:
        return self.answer is not _NO_ANSWER


class Toolbox:
    """Plain functions (sync or async, typed, with docstrings) as sampling tools.

    >>> def add(a: int, b: int) -> int:
    ...     '''Add two numbers.'''
    ...     return a + b
    >>> Toolbox([add]).sdk_tools()[0].input_schema["required"]
    ['a', 'b']
    """

    def __init__(
        self,
        functions: Sequence[Callable[..., Any]],
        *,
        concurrency: int = 4,
    ) -> None:
        self._tools = {f.__name__: _ToolFunction(f) for f in functions}
        if FINAL_RESPONSE in self._tools:
            raise ValueError(f"{FINAL_RESPONSE!r} is reserved for the final answer")
        self._slots = anyio.Semaphore(concurrency)

    def sdk_tools(self) -> list[Tool]:
        return [
            Tool(name=name, description=t.description, input_schema=t.parameters)
            for name, t in self._tools.items()
        ]

    def catalogue(self) -> str:
        """The tools, for a model that learns about them from the system prompt."""
        return "\n".join(
            f"- {name}: {t.description}\n  arguments (JSON Schema): "
            f"{json.dumps(t.parameters, separators=(',', ':'))}"
            for name, t in self._tools.items()
        )

    async def run(self, calls: list[Call]) -> list[Outcome]:
        """Run the calls concurrently (bounded); outcomes in the order of the calls."""
        outcomes: list[Outcome | None] = [None] * len(calls)

        async def run_one(index: int) -> None:
            async with self._slots:
                outcomes[index] = await self._run(calls[index])

        async with anyio.create_task_group() as group:
            for index in range(len(calls)):
                group.start_soon(run_one, index)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _run(self, call: Call) -> Outcome:
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join([*self._tools, FINAL_RESPONSE])
            return Outcome(
                call,
                f"There is no tool {quoted(call.name, 80)!r}; use one of: {known}.",
                True,
            )
        try:
            with tool_span(call.name):
                value = await tool.run(call.arguments)
        except ValidationError as error:
            return Outcome(
                call,
                f"Invalid arguments for {call.name}: {describe_problem(error)}",
                True,
            )
        # A failing tool is the model's problem to work around, not the loop's end.
        except Exception as error:  # noqa: BLE001
            text = fence("tool_error", f"{type(error).__name__}: {error}")
            return Outcome(call, f"{call.name} failed:\n{text}", True)
        return Outcome(call, fence("tool_result", _as_text(value)), False)


class _ToolFunction:
    """A plain function as the model sees it (its schema and docstring) and runs it
    (its arguments validated against its type hints)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.description = inspect.getdoc(function) or ""
        # pydantic reads a function as the schema of its arguments; its types say
        # only "a type", hence the cast.
        self.parameters = TypeAdapter(cast(Any, function)).json_schema()
        self._call = validate_call(function)

    async def run(self, arguments: dict[str, Any]) -> Any:
        value = self._call(**arguments)
        return await value if inspect.isawaitable(value) else value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str, ensure_ascii=False)


def read_native_turn(blocks: list[SamplingMessageContentBlock]) -> Turn:
    """A reply on the native path: tool calls, `final_response`, or text (read as
    JSON, since some models answer in text even when asked to call a tool)."""
    uses = tool_uses(blocks)
    if not uses:
        try:
            return Turn(answer=extract_json(text_in(blocks)))
        except ValueError:
            return Turn(problem=f"it called no tool; call a tool or {FINAL_RESPONSE}")
    turn = Turn()
    for use in uses:
        call = Call(use.id, use.name, use.input)
        if use.name == FINAL_RESPONSE and turn.final_call is None:
            turn.final_call, turn.answer = call, use.input
        else:
            turn.calls.append(call)
    return turn


class _CallAction(BaseModel):
    action: Literal["call"]
    tool: str
    arguments: dict[str, Any] = {}


class _FinalAction(BaseModel):
    action: Literal["final"]
    answer: Any


_ACTION = TypeAdapter(
    Annotated[_CallAction | _FinalAction, Field(discriminator="action")]
)


def read_emulated_turn(text: str, call_id: str) -> Turn:
    """A reply on the emulated path: one JSON action."""
    try:
        action = _ACTION.validate_python(extract_json(text))
    except (ValidationError, ValueError) as error:
        return Turn(
            problem=f"the reply is not a valid action: {describe_problem(error)}"
        )
    if isinstance(action, _FinalAction):
        return Turn(answer=action.answer)
    return Turn(calls=[Call(call_id, action.tool, action.arguments)])


def protocol_instructions(toolbox: Toolbox, spec: ResultSpec[Any]) -> str:
    """The action protocol, for a client that samples text only."""
    return (
        f"{EMULATED_PROTOCOL}, nothing else.\n"
        'To call a tool: {"action": "call", "tool": "<name>", "arguments": {...}}\n'
        'To finish: {"action": "final", "answer": <your answer>}\n'
        "After a call you receive its result; then reply with your next action.\n"
        f"Tools:\n{toolbox.catalogue()}\n"
        "The answer must match this JSON Schema: "
        f"{json.dumps(spec.schema, separators=(',', ':'))}"
    )


def accept(
    spec: ResultSpec[T],
    answer: Any,
    check: Check[T] | None,
    succeeded: list[Call],
) -> Accepted[T] | str:
    """The validated answer, or the problem with it."""
    try:
        result = spec.validate(answer)
    except ValidationError as error:
        return f"the answer is not a valid {spec.name}: {describe_problem(error)}"
    # The check's problem may quote the answer: the model's words.
    problem = check(result, succeeded) if check else None
    return quoted(problem, limit=1000) if problem else Accepted(result)


def native_follow_up(
    blocks: list[SamplingMessageContentBlock], turn: Turn, outcomes: list[Outcome]
) -> list[SamplingMessage]:
    """The assistant's turn, then one user message answering each of its tool calls."""
    uses = tool_uses(blocks)
    if not uses:
        return [
            assistant_turn(blocks),
            user_message(f"That reply was not usable: {turn.problem}."),
        ]
    results = [
        tool_result(outcome.call.id, outcome.text, is_error=outcome.is_error)
        for outcome in outcomes
    ]
    if turn.final_call is not None:
        results.append(_rejected(turn.final_call.id, turn.problem))
    answered = {result.tool_use_id for result in results}
    # A second final_response in one turn is not run; it still needs its result.
    results += [
        _rejected(u.id, "only one final answer counts")
        for u in uses
        if u.id not in answered
    ]
    return [assistant_turn(list(uses)), tool_results(results)]


def _rejected(call_id: str, problem: str | None) -> ToolResultContent:
    return tool_result(call_id, f"Not accepted: {problem}.", is_error=True)


def emulated_follow_up(
    reply: str, turn: Turn, outcomes: list[Outcome]
) -> list[SamplingMessage]:
    if outcomes:
        (outcome,) = outcomes
        verdict = "failed" if outcome.is_error else "returned"
        feedback = f"{quoted(outcome.call.name, 80)} {verdict}:\n{outcome.text}"
    else:
        feedback = f"Not accepted: {turn.problem}. Reply with one JSON action."
    return [assistant_text(reply), user_message(feedback)]


async def run_agent_loop(
    llm: LLM,
    task: Prompt,
    *,
    tools: Sequence[Callable[..., Any]],
    result_type: type[T],
    max_iterations: int | None,
    check: Check[T] | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
) -> AgentResult[T]:
    """The loop behind `LLM.run_agent`: sample, run the tools asked for, repeat."""
    settings = llm.settings
    limit = _iteration_limit(max_iterations, settings.max_iterations)
    spec = ResultSpec(result_type)
    toolbox = Toolbox(tools, concurrency=settings.tool_concurrency)
    native = llm.route.native_tools
    system = task.system(system, fenced_replies=True)
    if not native:
        system = f"{system}\n\n{protocol_instructions(toolbox, spec)}"
    sampling_tools = [*toolbox.sdk_tools(), spec.tool()] if native else None
    conversation = [user_message(task.text)]
    tool_calls = 0
    rejected_answers = 0
    succeeded: list[Call] = []
    for iteration in range(1, limit + 1):
        reply = await llm.sample(
            conversation,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            tools=sampling_tools,
            tool_choice=ToolChoice(mode="required") if native else None,
        )
        blocks = blocks_of(reply)
        turn = (
            read_native_turn(blocks)
            if native
            else read_emulated_turn(text_in(blocks), f"call-{iteration}")
        )
        if turn.has_answer:
            accepted = accept(spec, turn.answer, check, succeeded)
            if isinstance(accepted, Accepted):
                return AgentResult(accepted.result, iteration, tool_calls)
            turn.problem = accepted
            rejected_answers += 1
            if rejected_answers > settings.max_retries:
                raise StructuredOutputError(
                    f"The agent's answer was rejected {rejected_answers} times "
                    f"(MCP_SAMPLING_MAX_RETRIES={settings.max_retries}); "
                    f"the last problem: {turn.problem}"
                )
        tool_calls += len(turn.calls)
        if tool_calls > settings.max_tool_calls:
            raise AgentLimitError(
                f"The agent asked for more than {settings.max_tool_calls} "
                "tool calls (MCP_SAMPLING_MAX_TOOL_CALLS) without finishing."
            )
        # Run once per tool call: on the modern era later runs reuse the outcomes.
        outcomes = await llm.step("agent tools", toolbox.run, turn.calls)
        succeeded += [outcome.call for outcome in outcomes if not outcome.is_error]
        conversation += (
            native_follow_up(blocks, turn, outcomes)
            if native
            else emulated_follow_up(text_in(blocks), turn, outcomes)
        )
        called = ", ".join(quoted(call.name, 80) for call in turn.calls) or "no tool"
        await llm.report_progress(iteration, limit, f"iteration {iteration}: {called}")
    raise AgentLimitError(
        f"The agent did not finish within {limit} iterations "
        f"(max_iterations); it made {tool_calls} tool calls. Allow more "
        f"iterations (at most MCP_SAMPLING_MAX_ITERATIONS="
        f"{settings.max_iterations}) or narrow the task."
    )


def _iteration_limit(requested: int | None, ceiling: int) -> int:
    if requested is None:
        return ceiling
    if not 1 <= requested <= ceiling:
        raise AgentLimitError(
            f"max_iterations must be between 1 and {ceiling} "
            f"(MCP_SAMPLING_MAX_ITERATIONS); got {requested}."
        )
    return requested
