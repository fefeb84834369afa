"""A client that writes JSON-RPC by hand, to send the server what no SDK would.

`raw_client(server, answer)` connects in memory, declares `sampling` (with tools by
default), and answers every `sampling/createMessage` with `answer(params)`: any JSON
value as the result — a malformed one too — or `{"error": {...}}`. On the legacy era
(a 2025-11-25 session) the requests are pushed and answered concurrently, as the
TypeScript SDK does; on the modern era (2026-07-28) they come back in each round's
`InputRequiredResult`, and the client calls the tool again with every answer, as
MRTR asks. Either way `call_tool` returns the tool call's last raw response, and no
error the server sends may hold pydantic's dump (`ReadableErrors`).

    async with raw_client(server, lambda params: {"content": "nonsense"}) as call_tool:
        result = await call_tool("summarize", {"text": "..."})   # the raw result
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastmcp import FastMCP
from mcp.shared.memory import create_client_server_memory_streams
from mcp.shared.message import SessionMessage
from mcp.types import (
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)

from summarizer.core.testing import ReadableErrors

Answer = Callable[[dict[str, Any]], Any]
CallTool = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
MODERN_ROUNDS = 20


@asynccontextmanager
async def raw_client(
    server: FastMCP,
    answer: Answer,
    *,
    era: str = "legacy",
    sampling: dict[str, Any] | None = None,
) -> AsyncIterator[CallTool]:
    """`call_tool(name, arguments)` on `server`, sampling answered by `answer`."""
    errors = ReadableErrors.watching(server)
    capabilities = {"sampling": {"tools": {}} if sampling is None else sampling}
    async with (
        create_client_server_memory_streams() as (client, served),
        server._lifespan_manager(),
        anyio.create_task_group() as group,
    ):
        group.start_soon(
            lambda: server._mcp_server.run(
                *served, server._mcp_server.create_initialization_options()
            )
        )
        connection = _Connection(*client, answer, group)
        group.start_soon(connection.read)
        if era == "modern":
            call_tool = _modern(connection, capabilities, answer)
        else:
            await connection.request(
                "initialize",
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": capabilities,
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            )
            await connection.send(
                JSONRPCNotification(jsonrpc="2.0", method="notifications/initialized")
            )

            async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
                return await connection.request(
                    "tools/call", {"name": name, "arguments": arguments}
                )

        yield call_tool
        group.cancel_scope.cancel()
    errors.assert_readable()


def _modern(connection: _Connection, capabilities: dict, answer: Answer) -> CallTool:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    }

    async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        params = {"name": name, "arguments": arguments, "_meta": meta}
        for _ in range(MODERN_ROUNDS):
            response = await connection.request("tools/call", params)
            result = response.get("result") or {}
            if result.get("resultType") != "input_required":
                return response
            params = {
                **params,
                "requestState": result["requestState"],
                "inputResponses": {
                    key: answer(request["params"])
                    for key, request in result["inputRequests"].items()
                },
            }
        raise AssertionError(f"{name} did not finish in {MODERN_ROUNDS} rounds")

    return call_tool


class _Connection:
    def __init__(self, read, write, answer: Answer, group) -> None:
        self._read, self._write, self._answer, self._group = read, write, answer, group
        self._ids = itertools.count(1)
        self._waiting: dict[int, anyio.Event] = {}
        self._results: dict[int, dict[str, Any]] = {}

    async def send(self, message: Any) -> None:
        await self._write.send(SessionMessage(message))

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        self._waiting[request_id] = anyio.Event()
        await self.send(
            JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=params)
        )
        await self._waiting[request_id].wait()
        return self._results.pop(request_id)

    async def read(self) -> None:
        async for message in self._read:
            root = message.message
            if isinstance(root, JSONRPCRequest):
                self._group.start_soon(self._reply, root)
            elif isinstance(root, JSONRPCResponse | JSONRPCError):
                self._results[root.id] = root.model_dump(
                    by_alias=True, exclude_none=True
                )
                self._waiting.pop(root.id).set()

    async def _reply(self, request: JSONRPCRequest) -> None:
        if request.method != "sampling/createMessage":
            await self.send(JSONRPCResponse(jsonrpc="2.0", id=request.id, result={}))
            return
        answer = self._answer(request.params or {})
        if isinstance(answer, dict) and "error" in answer:
            await self.send(
                JSONRPCError(jsonrpc="2.0", id=request.id, error=answer["error"])
            )
        else:
            # model_construct: a result that is not an object goes out as it is.
            await self.send(
                JSONRPCResponse.model_construct(
                    jsonrpc="2.0", id=request.id, result=answer
                )
            )
