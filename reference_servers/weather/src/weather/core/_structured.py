"""Structured output: ask until the model's answer validates as the result type.

A result type is anything pydantic validates: usually a `BaseModel`. Its JSON schema is
the `final_response` tool's input schema on the native path and part of the system
prompt on the emulated one. A schema that is not an object is wrapped as
`{"value": ...}`, because tool inputs must be objects. `LLM.structured` runs
`ask_structured`, the loop; the rest of this module reads replies into results.

    >>> from pydantic import BaseModel
    >>> class Verdict(BaseModel):
    ...     ok: bool
    >>> ResultSpec(Verdict).validate(extract_json('Sure! {"ok": true}'))
    Verdict(ok=True)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mcp.types import (
    SamplingMessage,
    SamplingMessageContentBlock,
    Tool,
    ToolChoice,
    ToolUseContent,
)
from pydantic import TypeAdapter, ValidationError

from ._errors import StructuredOutputError
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

if TYPE_CHECKING:
    from ._gateway import LLM
    from ._prompting import Prompt

T = TypeVar("T")

FINAL_RESPONSE = "final_response"
_CODE_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)


class ResultSpec(Generic[T]):
    """What a structured request must produce, and how to check a candidate."""

    def __init__(self, result_type: type[T]) -> None:
        self.name = getattr(result_type, "__name__", str(result_type))
        self._adapter = TypeAdapter(result_type)
        schema = self._adapter.json_schema()
        self._wrapped = schema.get("type") != "object"
        self.schema = (
            {"type": "object", "properties": {"value": schema}, "required": ["value"]}
            if self._wrapped
            else schema
        )

    def tool(self) -> Tool:
        """The `final_response` sampling tool whose input is the result."""
        return Tool(
            name=FINAL_RESPONSE,
            description=(
                f"Give your final answer as a {self.name}. Call this exactly once, "
                "when you have the answer; its input is the answer."
            ),
            input_schema=self.schema,
        )

    def instructions(self) -> str:
        """How to answer when the client samples text only (the emulated path)."""
        return (
            "Answer with one JSON object and nothing else: no prose, no code fence. "
            "It must match this JSON Schema:\n"
            f"{json.dumps(self.schema, separators=(',', ':'))}"
        )

    def validate(self, data: Any) -> T:
        """The typed result; raises `ValidationError` when `data` does not fit."""
        if self._wrapped and isinstance(data, dict) and set(data) == {"value"}:
            data = data["value"]
        return self._adapter.validate_python(data)


def extract_json(text: str) -> Any:
    """The JSON value in a reply: bare, in a code fence, or with prose around it.

    Raises `ValueError` when there is none.

    >>> extract_json('Here you go:\\n```json\\n{"a": 1}\\n```')
    {'a': 1}
    """
    decoder = json.JSONDecoder()
    fenced = [m.group(1).strip() for m in _CODE_FENCE.finditer(text)]
    for candidate in [text.strip(), *fenced]:
        value = _decode(decoder, candidate, 0, whole=True)
        if value is not _NOTHING:
            return value
    for start, char in enumerate(text):
        if char in "{[":
            value = _decode(decoder, text, start, whole=False)
            if value is not _NOTHING:
                return value
    raise ValueError("the reply contains no JSON value")


_NOTHING = object()


def _decode(decoder: json.JSONDecoder, text: str, start: int, *, whole: bool) -> Any:
    """The JSON value at `start` (filling all of `text` if `whole`), or `_NOTHING`."""
    try:
        value, end = decoder.raw_decode(text, start)
    except json.JSONDecodeError:
        return _NOTHING
    return value if not whole or end == len(text) else _NOTHING


@dataclass(frozen=True)
class Accepted(Generic[T]):
    """A reply that holds a valid result."""

    result: T


@dataclass(frozen=True)
class Rejected:
    """A reply that holds no valid result: the problem, and what to say back."""

    problem: str
    follow_up: list[SamplingMessage]


def read_reply(
    spec: ResultSpec[T], blocks: list[SamplingMessageContentBlock], *, native: bool
) -> Accepted[T] | Rejected:
    """Read a reply to a structured request.

    A `tool_use` block counts whatever the reply's `stopReason` says (it is optional).
    Tool calls are answered with exactly one user message of tool results, one per
    call and paired by id, which is the history shape SEP-1577 requires. A text reply
    is read as JSON, on the native path too (some models answer in text anyway).
    """
    tool_calls = tool_uses(blocks)
    if tool_calls:
        return _read_tool_calls(spec, tool_calls)
    answer = text_in(blocks)
    try:
        return Accepted(spec.validate(extract_json(answer)))
    except (ValidationError, ValueError) as error:
        problem = describe_problem(error)
    how = (
        f"Call the {FINAL_RESPONSE} tool with the answer."
        if native
        else "Reply again with only the corrected JSON object."
    )
    return Rejected(
        problem,
        [
            assistant_text(answer),
            user_message(f"Your answer was not a valid {spec.name}: {problem}. {how}"),
        ],
    )


def _read_tool_calls(
    spec: ResultSpec[T], tool_calls: list[ToolUseContent]
) -> Accepted[T] | Rejected:
    called = ", ".join(quoted(c.name, 80) for c in tool_calls)
    problem = f"it called {called}, not {FINAL_RESPONSE}"
    results = []
    for call in tool_calls:
        if call.name == FINAL_RESPONSE:
            try:
                return Accepted(spec.validate(call.input))
            except ValidationError as error:
                problem = describe_problem(error)
            feedback = f"Invalid {spec.name}: {problem}. Call {FINAL_RESPONSE} again."
        else:
            feedback = (
                f"There is no tool {quoted(call.name, 80)!r}; call {FINAL_RESPONSE}."
            )
        results.append(tool_result(call.id, feedback, is_error=True))
    return Rejected(problem, [assistant_turn(list(tool_calls)), tool_results(results)])


async def ask_structured(
    llm: LLM,
    prompt: Prompt,
    result_type: type[T],
    *,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
) -> T:
    """The loop behind `LLM.structured`: ask, validate, send the problems back."""
    spec = ResultSpec(result_type)
    native = llm.route.native_tools
    system = prompt.system(system)
    if not native:
        system = "\n\n".join(filter(None, [system, spec.instructions()]))
    conversation = [user_message(prompt.text)]
    attempts = llm.settings.max_retries + 1
    problem = ""
    for _attempt in range(attempts):
        reply = await llm.sample(
            conversation,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            tools=[spec.tool()] if native else None,
            tool_choice=ToolChoice(mode="required") if native else None,
        )
        attempt = read_reply(spec, blocks_of(reply), native=native)
        if isinstance(attempt, Accepted):
            return attempt.result
        problem = attempt.problem
        conversation += attempt.follow_up
    raise StructuredOutputError(
        f"The LLM gave no valid {spec.name} in {attempts} attempts "
        f"(MCP_SAMPLING_MAX_RETRIES={llm.settings.max_retries}). "
        f"The last answer's problem: {problem}"
    )
