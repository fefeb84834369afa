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
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import uvicorn
from mcp.types import (
    CreateMessageRequestParams,
    SamplingMessage,
    TextContent,
    Tool,
    ToolChoice,
    ToolResultContent,
    ToolUseContent,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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
    """A scripted provider failure: the HTTP status and the provider's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def http_error(status: int, message: str) -> Entry:
    """Reply the request with an HTTP error, the way the provider reports one."""

    def respond(_request: CreateMessageRequestParams) -> Reply:
        raise ProviderError(status, message)

    return Entry(respond)


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
        path = "/v1/chat/completions" if dialect == "openai" else "/v1/messages"
        self.app = Starlette(routes=[Route(path, self._answer, methods=["POST"])])

    @classmethod
    @asynccontextmanager
    async def serving(
        cls, llm: ScriptedLLM, dialect: Dialect, usage: dict[str, int] = USAGE
    ) -> AsyncIterator[ProviderStandIn]:
        """Serve on a free loopback port for the duration of the block."""
        stand_in = cls(llm, dialect, usage)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        # The OpenAI SDK's base URL includes `/v1`; the Anthropic SDK's does not.
        root = f"http://127.0.0.1:{port}"
        stand_in.url = f"{root}/v1" if dialect == "openai" else root
        server = uvicorn.Server(
            uvicorn.Config(stand_in.app, log_level="warning", lifespan="off")
        )
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            yield stand_in
        finally:
            server.should_exit = True
            await serving
            listener.close()

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

    async def _answer(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.wire_requests.append(body)
        credential = request.headers.get(
            "authorization" if self.dialect == "openai" else "x-api-key", ""
        )
        self.credentials.append(credential)
        try:
            params = (
                _openai_request(body)
                if self.dialect == "openai"
                else _anthropic_request(body)
            )
            _check_history(params.messages)
            reply = await self.llm(params.messages, params, None)
        except ProviderError as error:
            return self._error(error.status, str(error), credential)
        except Exception as error:  # noqa: BLE001  # a bad request or an unscripted one
            return self._error(400, f"{type(error).__name__}: {error}", credential)
        if self.dialect == "openai":
            return JSONResponse(_openai_reply(reply, self.usage))
        return JSONResponse(_anthropic_reply(reply, self.usage))

    def _error(self, status: int, message: str, credential: str) -> JSONResponse:
        message = f"{message} (request credentials: {credential!r})"
        if self.dialect == "openai":
            body = {"error": {"message": message, "type": "invalid_request_error"}}
        else:
            body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return JSONResponse(body, status_code=status)


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
