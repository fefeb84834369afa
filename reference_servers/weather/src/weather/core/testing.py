"""The mock-client kit: a scripted LLM that answers sampling requests in tests.

Use it as a client's sampling handler or as the server-side LLM:

    llm = ScriptedLLM("A summary.")
    async with Client(server, sampling_handler=llm) as client:
        await client.call_tool("summarize", {"text": "..."})
    llm.assert_finished()

Each script entry answers one request, in arrival order. A plain string is a text reply;
the helpers build the rest:

- `final(data)`: a structured answer in the form the request asks for — a
  `final_response` tool call when it offers tools, JSON text when the client samples
  text only — so one script serves every client profile;
- `call(name, arguments)`: an agent's tool call, in the same way (a native `tool_use`,
  or the emulated JSON action);
- `tool_use(...)`, `tool_calls(...)`: native tool calls exactly as given;
- `fail(message)`: the client refuses (its user declined, its model errored);
- `answer(function)`: whatever `function(request)` returns — a string or a reply —
  for concurrent requests, whose order is not fixed.

`delay=` holds a reply back so that concurrency and timeouts become visible. A request
the script has no entry for fails the request and the test; so does an entry left
unused (`assert_finished`). `sampling_callback(respond)` answers for a plain
`mcp.ClientSession`, as in tests that start the server as a subprocess.
`assert_fences_genuine(request)` checks that no untrusted text forged a fence.
`signed_in(issuer, subject)` makes what a test connects act for that user.

Watching a server (each `watching(server)` wraps all it serves, as a client sees it):
`Rounds` counts the `tools/call` rounds a modern tool call takes; `Retries` sends
every round that continues a modern call a second time, as a client or a proxy that
lost the reply does, and fails the test, naming the tool, when the answer differs;
`ReadableErrors` fails it when an error a client reads holds pydantic's dump. The
project's `connect` fixture puts the last two on every server it builds.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeGuard, cast

import anyio
from fastmcp.server.auth import AccessToken
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CreateMessageRequestParams,
    CreateMessageResultWithTools,
    RequestParamsMeta,
    TextContent,
    ToolResultContent,
    ToolUseContent,
)
from typing_extensions import Self

from ._agent import EMULATED_PROTOCOL
from ._identity import Principal
from ._messages import Reply, text_reply
from ._structured import FINAL_RESPONSE

Respond = Callable[[CreateMessageRequestParams], "str | Reply"]
"""Makes the reply to one request: a plain string is a text reply."""


@dataclass(frozen=True)
class Entry:
    """One scripted reply: how to answer a request, and how long to take."""

    respond: Respond
    delay: float = 0.0


def text(value: str, *, delay: float = 0.0) -> Entry:
    """Reply with plain text (a bare string in a script does the same)."""
    return Entry(lambda _request: value, delay)


def answer(respond: Respond, *, delay: float = 0.0) -> Entry:
    """Reply with whatever `respond` makes of the request: a string, or a reply."""
    return Entry(respond, delay)


def tool_use(
    name: str,
    arguments: dict[str, Any],
    *,
    call_id: str = "call-1",
    stop_reason: str = "toolUse",
    delay: float = 0.0,
) -> Entry:
    """Reply with a request to call one sampling tool."""
    return tool_calls((call_id, name, arguments), stop_reason=stop_reason, delay=delay)


def tool_calls(
    *calls: tuple[str, str, dict[str, Any]],
    stop_reason: str = "toolUse",
    delay: float = 0.0,
) -> Entry:
    """Reply with several tool calls in one turn, each `(call_id, name, arguments)`."""
    return Entry(
        lambda _request: tool_use_reply(*calls, stop_reason=stop_reason), delay
    )


def call(
    name: str,
    arguments: dict[str, Any],
    *,
    call_id: str = "call-1",
    delay: float = 0.0,
) -> Entry:
    """An agent's tool call: `tool_use` when the request offers tools, else the JSON
    action of the emulated protocol."""

    def respond(request: CreateMessageRequestParams) -> str | Reply:
        if request.tools:
            return tool_use_reply((call_id, name, arguments))
        return json.dumps({"action": "call", "tool": name, "arguments": arguments})

    return Entry(respond, delay)


def final(data: Any, *, delay: float = 0.0) -> Entry:
    """A structured answer, in the form the request asks for (see `final_answer`)."""
    return Entry(lambda request: final_answer(request, data), delay)


def final_answer(request: CreateMessageRequestParams, data: Any) -> str | Reply:
    """`data` as the answer to a structured request or an agent's last turn.

    A `final_response` tool call when the request offers tools; otherwise JSON text:
    the emulated agent protocol's `final` action, or the bare object.
    """
    if request.tools:
        return tool_use_reply(("final", FINAL_RESPONSE, data))
    if EMULATED_PROTOCOL in (request.system_prompt or ""):
        return json.dumps({"action": "final", "answer": data})
    return json.dumps(data)


def tool_use_reply(
    *calls: tuple[str, str, dict[str, Any]], stop_reason: str = "toolUse"
) -> CreateMessageResultWithTools:
    """A reply holding tool calls, each `(call_id, name, arguments)`."""
    return CreateMessageResultWithTools(
        role="assistant",
        content=[
            ToolUseContent(type="tool_use", id=call_id, name=name, input=arguments)
            for call_id, name, arguments in calls
        ],
        model="scripted",
        stop_reason=stop_reason,
    )


def sampling_callback(
    respond: Respond,
) -> Callable[[Any, CreateMessageRequestParams], Awaitable[Reply]]:
    """`respond` as the `sampling_callback` of an `mcp.ClientSession`."""

    async def callback(_context: Any, request: CreateMessageRequestParams) -> Reply:
        return as_reply(respond(request))

    return callback


def as_reply(reply: str | Reply) -> Reply:
    """A reply as a client sends it: a plain string becomes a text reply."""
    return text_reply(reply, model="scripted") if isinstance(reply, str) else reply


def fail(message: str, *, delay: float = 0.0) -> Entry:
    """Refuse the request, as a client whose user declined it would."""

    def refuse(_request: CreateMessageRequestParams) -> Reply:
        raise RuntimeError(message)

    return Entry(refuse, delay)


@contextmanager
def signed_in(issuer: str, subject: str) -> Iterator[Principal]:
    """What this block connects acts for `subject` of `issuer`, as if it had signed
    in: the server finds the user where its OAuth middleware would put them. For
    in-memory tests; over HTTP a client sends a token instead.

        with signed_in("https://id.example", "ada"):
            async with Client(server) as client: ...
    """
    token = AccessToken(
        token=f"signed-in-{subject}",
        client_id="tests",
        scopes=[],
        subject=subject,
        claims={"iss": issuer, "sub": subject},
    )
    previous = auth_context_var.set(AuthenticatedUser(token))
    try:
        yield Principal(issuer, subject)
    finally:
        auth_context_var.reset(previous)


class ScriptedLLM:
    """A sampling handler that follows a script and records what it was asked."""

    def __init__(self, *script: Entry | str) -> None:
        self._script: deque[Entry] = deque()
        self.requests: list[CreateMessageRequestParams] = []
        """Every request received, in arrival order."""
        self.request_ids: list[Any] = []
        """The id of each request's context: the tool call's id on the server side."""
        self.in_flight = 0
        self.max_in_flight = 0
        """The most requests being answered at one moment."""
        self.cancelled = 0
        """Requests whose caller gave up before the reply was ready."""
        self.started = anyio.Event()
        """Set when the first request arrives."""
        self._problems: list[str] = []
        self.expect(*script)

    def expect(self, *entries: Entry | str) -> None:
        """Add entries to the end of the script; a string is a text reply."""
        self._script.extend(
            text(entry) if isinstance(entry, str) else entry for entry in entries
        )

    async def __call__(
        self, messages: Any, params: CreateMessageRequestParams, context: Any
    ) -> Reply:
        self.requests.append(params)
        self.request_ids.append(getattr(context, "request_id", None))
        self.started.set()
        if not self._script:
            problem = f"unexpected sampling request #{len(self.requests)}: {params!r}"
            self._problems.append(problem)
            raise RuntimeError(problem)
        entry = self._script.popleft()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(entry.delay)
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        return as_reply(entry.respond(params))

    def assert_finished(self) -> None:
        """Fail unless every request was expected and every entry was used."""
        assert not self._problems, "\n".join(self._problems)
        assert not self.in_flight, f"{self.in_flight} request(s) left unanswered"
        assert not self._script, f"{len(self._script)} script entries were never used"


class _Watch:
    """An SDK middleware over the whole server: it sees each request as it arrives
    and each result or error as the client will read it (requestState sealed)."""

    @classmethod
    def watching(cls, server: Any, *args: Any, **kwargs: Any) -> Self:
        """A new watch on `server` (see `watch`)."""
        return cls(*args, **kwargs).watch(server)

    def watch(self, server: Any) -> Self:
        """Watch `server`, outside whatever watches it already."""
        server._mcp_server.middleware.insert(0, self)  # FastMCP has no public hook
        return self


class Rounds(_Watch):
    """Records every `tools/call` the server answers: how many requests each round of
    a modern call asked for (0 for the round that returns the result).

        rounds = Rounds.watching(server)
        ...
        assert rounds.asked == [9, 9, 1, 0]     # a council debate over MRTR
    """

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.states: list[int] = []
        """The size of each round's sealed `requestState`, in characters."""

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method == "tools/call":
            if _input_required(result):
                self.asked.append(len(result["inputRequests"]))
                self.states.append(len(result["requestState"]))
            else:
                self.asked.append(0)
        return result


def _input_required(result: object) -> TypeGuard[dict[str, Any]]:
    return isinstance(result, dict) and result.get("resultType") == "input_required"


class Retries(_Watch):
    """Sends every round that continues a modern tool call (it carries a
    `requestState`) a second time, as a client or a proxy that lost the reply would,
    and records where the second answer differs from the first.

    A round sent again is the same run again (`_replay.py`): it must ask for the same
    requests and, in the last round, return the same result. A tool whose effects
    after its last model answer are not idempotent (a record stored under a fresh
    key, a message sent twice) fails here, by name. By default the last round is
    sent again, after the first answer; `every_round=True` sends every round twice
    at once, as a proxy's retry may while the first still runs; `last_round=False`
    (with `every_round` off) sends nothing again, for a test that counts what each
    round does. The second sending asks for no progress, as a client's retry of its
    own would not share a token. A round without `requestState` starts a call, so it
    is never sent again.

        retries = Retries.watching(server)
        ...
        retries.assert_same()
    """

    def __init__(self, *, every_round: bool = False, last_round: bool = True) -> None:
        self.every_round = every_round
        self.last_round = last_round
        self.sent_again = 0
        """Rounds sent a second time."""
        self.problems: list[str] = []

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        params = ctx.params or {}
        resent = self.every_round or self.last_round
        if ctx.method != "tools/call" or not resent or not params.get("requestState"):
            return await call_next(ctx)
        unasked = {k: v for k, v in (ctx.meta or {}).items() if k != "progress_token"}
        again = replace(ctx, meta=cast(RequestParamsMeta, unasked))
        if self.every_round:
            outcomes: list[Any] = [None, None]

            async def run(index: int, each: ServerRequestContext[Any, Any]) -> None:
                outcomes[index] = await _outcome(call_next, each)

            async with anyio.create_task_group() as group:
                group.start_soon(run, 0, ctx)
                group.start_soon(run, 1, again)
            first, second = outcomes
        else:
            first = await _outcome(call_next, ctx)
            if _input_required(first):
                return first
            second = await _outcome(call_next, again)
        self.sent_again += 1
        if _comparable(first) != _comparable(second):
            self.problems.append(
                f"{params.get('name')}: the same round sent again was answered "
                "differently (effects after the last model answer must be "
                "idempotent: key them by llm.new_id()).\n"
                f"  first: {_shown(first)}\n  again: {_shown(second)}"
            )
        if isinstance(first, MCPError):
            raise first
        return cast(HandlerResult, first)

    def assert_same(self) -> None:
        """Fail unless every round sent again was answered as it was the first time."""
        assert not self.problems, "\n".join(self.problems)


async def _outcome(call_next: CallNext, ctx: ServerRequestContext[Any, Any]) -> Any:
    """The result, or the protocol error, the client would read."""
    try:
        return await call_next(ctx)
    except MCPError as error:
        return error


def _comparable(outcome: Any) -> Any:
    """What must not change when a round is sent again: the requests a round asks
    for, or the result (its sealed state and `_meta` are new every time)."""
    if isinstance(outcome, MCPError):
        return ("error", outcome.error.code, outcome.error.message)
    if _input_required(outcome):
        return ("input_required", outcome["inputRequests"])
    return {key: value for key, value in outcome.items() if key != "_meta"}


def _shown(outcome: Any) -> str:
    text = json.dumps(_comparable(outcome), default=str)
    return text if len(text) <= 600 else f"{text[:600]}…"


PYDANTIC_DUMP = ("validation error for", "input_value", "For further information visit")
"""What betrays pydantic's own error text, which no client should read."""


class ReadableErrors(_Watch):
    """Records every error a client reads (a protocol error, or a tool result marked
    `isError`) that holds pydantic's dump instead of a message of the server's.

        errors = ReadableErrors.watching(server)
        ...
        errors.assert_readable()
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        """Every error text a client read."""

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        try:
            result = await call_next(ctx)
        except MCPError as error:
            self.errors.append(error.error.message)
            raise
        if isinstance(result, Mapping) and result.get("isError"):
            self.errors += [
                block.get("text", "") for block in result.get("content") or []
            ]
        return result

    def assert_readable(self) -> None:
        """Fail, quoting it, if an error a client read holds pydantic's dump."""
        dumps = [e for e in self.errors if any(mark in e for mark in PYDANTIC_DUMP)]
        assert not dumps, f"errors holding pydantic's dump: {dumps}"


_BOUNDARY = re.compile(r"^<<<(BEGIN|END) UNTRUSTED (.+) ([0-9a-f]{32})>>>$")
_NONCE = re.compile(r"the exact code ([0-9a-f]{32})")


def readable(text: str) -> str:
    """`text` as a reader takes it: NFKC, without invisible or control characters.

    Written apart from the gateway's neutraliser, so a test of one is not the other.
    """
    return "".join(
        char
        for char in unicodedata.normalize("NFKC", text)
        if char in "\n\t" or unicodedata.category(char) not in {"Cf", "Cc"}
    )


def assert_fences_genuine(request: CreateMessageRequestParams) -> None:
    """Fail unless every boundary line the request carries, read as a model reads it,
    is one of the gateway's own: the request's nonce, in BEGIN/END pairs."""
    match = _NONCE.search(request.system_prompt or "")
    nonce = match[1] if match else None
    texts = []
    for message in request.messages:
        for block in message.content_as_list:
            if isinstance(block, TextContent):
                texts.append(block.text)
            elif isinstance(block, ToolResultContent):
                texts += [b.text for b in block.content if isinstance(b, TextContent)]
    lines = [
        found
        for text in texts
        for line in readable(text).splitlines()
        if (found := _BOUNDARY.match(line))
    ]
    forged = [line[0] for line in lines if line[3] != nonce]
    assert not forged, f"boundary lines without the request's nonce: {forged}"
    kinds = [line[1] for line in lines]
    assert kinds == ["BEGIN", "END"] * (len(kinds) // 2), f"unpaired fences: {kinds}"


def prompt_text(request: CreateMessageRequestParams) -> str:
    """The text of a request's last message."""
    content = request.messages[-1].content
    blocks = content if isinstance(content, list) else [content]
    return "\n".join(b.text for b in blocks if isinstance(b, TextContent))
