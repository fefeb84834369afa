"""Stand-ins for LLM providers: real HTTP servers on loopback, answered by a script.

`ProviderStandIn` speaks the OpenAI Chat Completions API (`POST /v1/chat/completions`,
the dialect of OpenAI, Ollama, vLLM, LM Studio and LiteLLM) or the Anthropic Messages
API (`POST /v1/messages`). It reads each request back into the MCP shape and asks a
`ScriptedLLM` to answer it, so a server-side test is scripted exactly like a client-side
one; the reply goes back in the provider's wire format, tool calls included.

    async with ProviderStandIn.serving(ScriptedLLM(text("Hi")), "openai") as provider:
        settings = provider.settings()     # MCP_SAMPLING_* pointing at the stand-in

Like a real provider it checks the history it is sent (every `tool_use` answered by
the next message, by id) and answers errors with a JSON body; `http_error(...)` scripts
one. Its error bodies echo the credentials they received, so a test can prove that the
server never passes a provider's words, and with them the key, on unredacted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import h11
from mcp.types import (
    CreateMessageRequestParams,
    SamplingMessage,
    TextContent,
    Tool,
    ToolChoice,
    ToolResultContent,
    ToolUseContent,
)

from summarizer.core import GatewaySettings
from summarizer.core.testing import (
    Entry,
    Reply,
    ScriptedLLM,
)

Dialect = Literal["openai", "anthropic"]
API_KEY = "sk-standin-0123456789abcdef"
"""The key tests configure; it must never come back out of the server."""
MODEL = "standin-model"
USAGE = {"input_tokens": 42, "output_tokens": 7}
"""The tokens the stand-in reports for every reply by default, as each provider spells
them."""


class ProviderError(Exception):
    """A scripted provider failure: the HTTP status, the provider's message, and the
    seconds its `Retry-After` asks the client to wait (None: no such header)."""

    def __init__(
        self, status: int, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def http_error(status: int, message: str, retry_after: float | None = None) -> Entry:
    """Reply the request with an HTTP error, the way the provider reports one; a
    provider shedding load (429, 503) says when to try again with `retry_after`."""

    def respond(_request: CreateMessageRequestParams) -> Reply:
        raise ProviderError(status, message, retry_after)

    return Entry(respond)


Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]
"""An HTTP status, a JSON body and extra headers."""


class ProviderStandIn:
    """One provider endpoint on a loopback port, answering from `llm`."""

    def __init__(
        self, llm: ScriptedLLM, dialect: Dialect, usage: dict[str, int] = USAGE
    ) -> None:
        self.llm = llm
        self.dialect = dialect
        self.usage = usage
        """The tokens reported for every reply."""
        self.wire_requests: list[dict[str, Any]] = []
        """Every request body as received, in arrival order."""
        self.credentials: list[str] = []
        """The credential header of every request."""
        self.url = ""
        self.path = "/v1/chat/completions" if dialect == "openai" else "/v1/messages"

    @classmethod
    @asynccontextmanager
    async def serving(
        cls, llm: ScriptedLLM, dialect: Dialect, usage: dict[str, int] = USAGE
    ) -> AsyncIterator[ProviderStandIn]:
        """Serve on a free loopback port for the duration of the block.

        HTTP/1.1 with keep-alive, by h11 on asyncio's own server: leaving the block
        closes the connections at once, where a general-purpose server would poll
        and drain them (uvicorn: 0.2 s a stand-in, and hundreds of stand-ins a run).
        """
        stand_in = cls(llm, dialect, usage)
        connections: set[asyncio.Task[Any]] = set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await stand_in._serve_connection(reader, writer)
            finally:
                connections.discard(task)
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        # The OpenAI SDK's base URL includes `/v1`; the Anthropic SDK's does not.
        root = f"http://127.0.0.1:{port}"
        stand_in.url = f"{root}/v1" if dialect == "openai" else root
        try:
            yield stand_in
        finally:
            server.close()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer the requests of one connection until the client closes it."""
        connection = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request, body = event, bytearray()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                status, reply, headers = await self._answer(request, bytes(body))
                payload = json.dumps(reply).encode()
                head = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(payload))),
                    *headers,
                ]
                for part in (
                    h11.Response(status_code=status, headers=head),
                    h11.Data(data=payload),
                    h11.EndOfMessage(),
                ):
                    writer.write(connection.send(part) or b"")
                await writer.drain()
                if connection.our_state is not h11.DONE:
                    return  # the client asked to close
                connection.start_next_cycle()
            else:  # the client closed the connection
                return

    @property
    def configuration(self) -> dict[str, str]:
        """The `GatewaySettings` fields that make this stand-in the server-side LLM."""
        return {
            "provider": self.dialect,
            "model": MODEL,
            "api_key": API_KEY,
            "base_url": self.url,
        }

    def settings(
        self, base: GatewaySettings | None = None, **overrides: Any
    ) -> GatewaySettings:
        """`base` (default: the defaults) with this stand-in as the server-side LLM."""
        fields = (base or GatewaySettings()).model_dump(exclude_unset=True)
        return GatewaySettings(**self.configuration | fields | overrides)

    def environment(self, **overrides: str) -> dict[str, str]:
        """The same configuration as environment variables, for a server process."""
        variables = {
            f"MCP_SAMPLING_{field.upper()}": value
            for field, value in self.configuration.items()
        }
        return variables | overrides

    async def _answer(self, request: h11.Request, body: bytes) -> Answer:
        headers = {name.decode(): value.decode() for name, value in request.headers}
        credential = headers.get(
            "authorization" if self.dialect == "openai" else "x-api-key", ""
        )
        if (request.method, request.target.decode()) != (b"POST", self.path):
            return self._error(ProviderError(404, "no such endpoint"), credential)
        wire = json.loads(body)
        self.wire_requests.append(wire)
        self.credentials.append(credential)
        try:
            params = (
                _openai_request(wire)
                if self.dialect == "openai"
                else _anthropic_request(wire)
            )
            _check_history(params.messages)
            reply = await self.llm(params.messages, params, None)
        except ProviderError as error:
            return self._error(error, credential)
        except Exception as error:  # noqa: BLE001  # a bad request or an unscripted one
            problem = ProviderError(400, f"{type(error).__name__}: {error}")
            return self._error(problem, credential)
        if self.dialect == "openai":
            return 200, _openai_reply(reply, self.usage), []
        return 200, _anthropic_reply(reply, self.usage), []

    def _error(self, error: ProviderError, credential: str) -> Answer:
        message = f"{error} (request credentials: {credential!r})"
        if self.dialect == "openai":
            body = {"error": {"message": message, "type": "invalid_request_error"}}
        else:
            body = {"type": "error", "error": {"type": "api_error", "message": message}}
        headers = []
        if error.retry_after is not None:
            # Both SDKs read the milliseconds header before the standard one.
            headers.append(("retry-after-ms", f"{error.retry_after * 1000:g}"))
        return error.status, body, headers


def _check_history(messages: list[SamplingMessage]) -> None:
    """Refuse a history in which a tool call is not answered next, by id."""
    for current, following in itertools.pairwise(messages):
        calls = {b.id for b in current.content_as_list if isinstance(b, ToolUseContent)}
        answered = {
            b.tool_use_id
            for b in following.content_as_list
            if isinstance(b, ToolResultContent)
        }
        if calls != answered:
            raise ValueError(
                f"tool calls {sorted(calls)} answered by {sorted(answered)}"
            )


def _openai_request(body: dict[str, Any]) -> CreateMessageRequestParams:
    system = None
    messages: list[SamplingMessage] = []
    for message in body["messages"]:
        role, content = message["role"], message.get("content")
        if role == "system":
            system = content
        elif role == "tool":
            result = ToolResultContent(
                type="tool_result",
                tool_use_id=message["tool_call_id"],
                content=[TextContent(type="text", text=content)],
            )
            if messages and _only_tool_results(messages[-1]):
                messages[-1].content.append(result)
            else:
                messages.append(SamplingMessage(role="user", content=[result]))
        else:
            blocks: list[Any] = [
                TextContent(type="text", text=t) for t in _texts(content)
            ]
            blocks += [
                ToolUseContent(
                    type="tool_use",
                    id=call["id"],
                    name=call["function"]["name"],
                    input=json.loads(call["function"]["arguments"]),
                )
                for call in message.get("tool_calls") or []
            ]
            messages.append(SamplingMessage(role=role, content=blocks))
    tools = [
        Tool(
            name=tool["function"]["name"],
            description=tool["function"].get("description"),
            input_schema=tool["function"]["parameters"],
        )
        for tool in body.get("tools", [])
    ]
    return CreateMessageRequestParams(
        messages=messages,
        system_prompt=system,
        max_tokens=body["max_completion_tokens"],
        temperature=body.get("temperature"),
        tools=tools or None,
        tool_choice=ToolChoice(mode=body["tool_choice"])
        if "tool_choice" in body
        else None,
    )


def _anthropic_request(body: dict[str, Any]) -> CreateMessageRequestParams:
    messages: list[SamplingMessage] = []
    for message in body["messages"]:
        blocks: list[Any] = []
        content = message["content"]
        for block in (
            [{"type": "text", "text": content}] if isinstance(content, str) else content
        ):
            if block["type"] == "text":
                blocks.append(TextContent(type="text", text=block["text"]))
            elif block["type"] == "tool_use":
                blocks.append(
                    ToolUseContent(
                        type="tool_use",
                        id=block["id"],
                        name=block["name"],
                        input=block["input"],
                    )
                )
            elif block["type"] == "tool_result":
                blocks.append(
                    ToolResultContent(
                        type="tool_result",
                        tool_use_id=block["tool_use_id"],
                        content=[
                            TextContent(type="text", text=t)
                            for t in _texts(block["content"])
                        ],
                        is_error=block.get("is_error", False),
                    )
                )
            else:
                raise ValueError(f"unsupported content block {block['type']!r}")
        messages.append(SamplingMessage(role=message["role"], content=blocks))
    choice = body.get("tool_choice", {}).get("type")
    return CreateMessageRequestParams(
        messages=messages,
        system_prompt=body.get("system"),
        max_tokens=body["max_tokens"],
        temperature=body.get("temperature"),
        tools=[
            Tool(
                name=t["name"],
                description=t.get("description"),
                input_schema=t["input_schema"],
            )
            for t in body.get("tools", [])
        ]
        or None,
        tool_choice=ToolChoice(mode={"any": "required"}.get(choice, choice))
        if choice
        else None,
    )


def _texts(content: str | list[dict[str, Any]] | None) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [part["text"] for part in content if part.get("type") == "text"]


def _only_tool_results(message: SamplingMessage) -> bool:
    return isinstance(message.content, list) and all(
        isinstance(b, ToolResultContent) for b in message.content
    )


def _blocks(reply: Reply) -> list[Any]:
    return reply.content if isinstance(reply.content, list) else [reply.content]


def _openai_reply(reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
    blocks = _blocks(reply)
    calls = [b for b in blocks if isinstance(b, ToolUseContent)]
    text = "\n".join(b.text for b in blocks if isinstance(b, TextContent))
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.input)},
            }
            for call in calls
        ]
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage["input_tokens"],
            "completion_tokens": usage["output_tokens"],
            "total_tokens": sum(usage.values()),
        },
    }


def _anthropic_reply(reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in _blocks(reply):
        if isinstance(block, TextContent):
            content.append({"type": "text", "text": block.text})
        elif isinstance(block, ToolUseContent):
            content.append(
                {
                    "type": "tool_use",
                    "id": block.id,
                    "name": block.name,
                    "input": block.input,
                }
            )
    uses_tools = any(block["type"] == "tool_use" for block in content)
    return {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": "tool_use" if uses_tools else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
