"""A client that writes JSON-RPC by hand, to send the server what no SDK would.

`raw_client(server, answer)` connects in memory, declares `sampling` (with tools by
default), and answers every `sampling/createMessage` with `answer(params)`: any JSON
object as the result — a malformed one too — or `{"error": {...}}`. Requests are
answered concurrently, as the TypeScript SDK does.

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

Answer = Callable[[dict[str, Any]], dict[str, Any]]
CallTool = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@asynccontextmanager
async def raw_client(
    server: FastMCP,
    answer: Answer,
    *,
    sampling: dict[str, Any] | None = None,
) -> AsyncIterator[CallTool]:
    """`call_tool(name, arguments)` on `server`, sampling answered by `answer`."""
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
        capabilities = {"sampling": {"tools": {}} if sampling is None else sampling}
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
        if "error" in answer:
            await self.send(
                JSONRPCError(jsonrpc="2.0", id=request.id, error=answer["error"])
            )
        else:
            await self.send(
                JSONRPCResponse(jsonrpc="2.0", id=request.id, result=answer)
            )
