"""A scripted LLM: answers sampling requests from a script and checks it was followed.

Use it as a client's sampling handler or as the server-side one:

    llm = ScriptedLLM(text("A summary."))
    async with Client(server, sampling_handler=llm) as client:
        await client.call_tool("summarize", {"text": "..."})
    llm.assert_finished()

Each script entry answers one request, in arrival order: `text(...)`, `tool_use(...)`,
`tool_calls(...)`, `fail(...)`, or `answer(function)` whose reply depends on the request
(for concurrent requests, whose order is not fixed). `delay=` holds a reply back so that
concurrency and timeouts become visible. A request the script has no entry for fails the
request and the test; so does an entry left unused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    TextContent,
    ToolUseContent,
)

Answer = CreateMessageResult | CreateMessageResultWithTools


@dataclass(frozen=True)
class Entry:
    """One scripted reply: how to answer a request, and how long to take."""

    respond: Callable[[CreateMessageRequestParams], Answer]
    delay: float = 0.0


def text(value: str, *, delay: float = 0.0) -> Entry:
    """Reply with plain text."""
    return answer(lambda _request: value, delay=delay)


def answer(
    reply: Callable[[CreateMessageRequestParams], str], *, delay: float = 0.0
) -> Entry:
    """Reply with the text that `reply` makes of the request."""
    return Entry(
        lambda request: CreateMessageResult(
            role="assistant",
            content=TextContent(type="text", text=reply(request)),
            model="scripted",
            stopReason="endTurn",
        ),
        delay,
    )


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
        lambda _request: CreateMessageResultWithTools(
            role="assistant",
            content=[
                ToolUseContent(type="tool_use", id=call_id, name=name, input=arguments)
                for call_id, name, arguments in calls
            ],
            model="scripted",
            stopReason=stop_reason,
        ),
        delay,
    )


def fail(message: str, *, delay: float = 0.0) -> Entry:
    """Refuse the request, as a client whose user declined it would."""

    def refuse(_request: CreateMessageRequestParams) -> Answer:
        raise RuntimeError(message)

    return Entry(refuse, delay)


class ScriptedLLM:
    """A sampling handler that follows a script and records what it was asked."""

    def __init__(self, *script: Entry) -> None:
        self._script: deque[Entry] = deque(script)
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

    def expect(self, *entries: Entry) -> None:
        """Add entries to the end of the script."""
        self._script.extend(entries)

    async def __call__(
        self, messages: Any, params: CreateMessageRequestParams, context: Any
    ) -> Answer:
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
        return entry.respond(params)

    def assert_finished(self) -> None:
        """Fail unless every request was expected and every entry was used."""
        assert not self._problems, "\n".join(self._problems)
        assert not self.in_flight, f"{self.in_flight} request(s) left unanswered"
        assert not self._script, f"{len(self._script)} script entries were never used"


def prompt_text(request: CreateMessageRequestParams) -> str:
    """The text of a request's last message."""
    content = request.messages[-1].content
    blocks = content if isinstance(content, list) else [content]
    return "\n".join(b.text for b in blocks if isinstance(b, TextContent))
