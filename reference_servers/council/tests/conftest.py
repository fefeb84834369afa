"""The mock-client kit: a scripted LLM and clients of every sampling capability.

Client profiles, after what real clients declare:

- `tools`: samples with tools (`sampling.tools`), like fast-agent;
- `text`: samples text only, like VS Code, goose and the MCP Inspector;
- `none`: does not sample, like Claude Desktop, Claude Code and Cursor.

The `client` fixture runs a test once per profile; `connect` builds one client (and its
server) for a test that needs particular settings or a server-side LLM: the scripted LLM
itself, or behind a stand-in OpenAI or Anthropic endpoint (`provider_standin.py`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from pathlib import Path
from typing import TextIO

import pytest
from fastmcp import Client, FastMCP
from mcp import ClientSession, StdioServerParameters
from mcp.client.session import SamplingFnT
from mcp.client.stdio import stdio_client
from mcp.types import SamplingCapability, SamplingToolsCapability
from provider_standin import Dialect, ProviderStandIn
from scripted_llm import ScriptedLLM

from council.config import GatewaySettings
from council.server import create_server

PROFILES: dict[str, SamplingCapability | None] = {
    "tools": SamplingCapability(tools=SamplingToolsCapability()),
    "text": SamplingCapability(),
    "none": None,
}
SAMPLING_PROFILES = ["tools", "text"]

Connect = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    """The LLM of this test; fails the test if its script was not followed."""
    llm = ScriptedLLM()
    yield llm
    llm.assert_finished()


@pytest.fixture
def connect(scripted_llm: ScriptedLLM) -> Connect:
    """`async with connect(profile, ...) as client`: a server and a client of it.

    `server_llm=True` installs the scripted LLM as the server-side LLM instead of the
    client's: the server then calls it directly and concurrently, so tests can watch
    requests in flight (FastMCP's client answers sampling one request at a time).
    `provider="openai"` or `"anthropic"` puts the scripted LLM behind a stand-in
    provider on loopback instead, configured through the `MCP_SAMPLING_*` settings,
    so requests and replies cross the provider's real SDK and wire format.
    `setup` may add test-only tools to the server before the client connects.
    """

    @asynccontextmanager
    async def connect(
        profile: str,
        *,
        settings: GatewaySettings | None = None,
        server_llm: bool = False,
        provider: Dialect | None = None,
        setup: Callable[[FastMCP, GatewaySettings], None] | None = None,
        **client_options: object,
    ) -> AsyncIterator[Client]:
        async with AsyncExitStack() as stack:
            gateway = settings or GatewaySettings()
            if provider is not None:
                stand_in = await stack.enter_async_context(
                    ProviderStandIn.serving(scripted_llm, provider)
                )
                gateway = stand_in.settings(gateway)
            server = create_server(
                gateway, sampling_handler=scripted_llm if server_llm else None
            )
            if setup is not None:
                setup(server, gateway)
            capability = PROFILES[profile]
            if capability is not None:
                client_options |= {
                    "sampling_handler": scripted_llm,
                    "sampling_capabilities": capability,
                }
            client = await stack.enter_async_context(Client(server, **client_options))
            yield client

    return connect


@pytest.fixture(params=list(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def client(connect: Connect, profile: str) -> AsyncIterator[Client]:
    async with connect(profile) as client:
        yield client


def server_command(*args: str) -> StdioServerParameters:
    """The installed `council` console script, as a subprocess."""
    script = Path(sys.executable).with_name("council")
    return StdioServerParameters(
        command=str(script), args=list(args), env=dict(os.environ)
    )


@asynccontextmanager
async def stdio_session(
    *args: str,
    sampling_callback: SamplingFnT | None = None,
    errlog: TextIO = sys.stderr,
) -> AsyncIterator[ClientSession]:
    """A real `mcp` ClientSession talking to the server over stdio."""
    async with (
        stdio_client(server_command(*args), errlog=errlog) as (read, write),
        ClientSession(read, write, sampling_callback=sampling_callback) as session,
    ):
        await session.initialize()
        yield session


@contextmanager
def serving_http(*args: str) -> Iterator[str]:
    """The console script serving streamable HTTP on a free loopback port; its URL.

    The server reads the environment as it is when the block starts.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = server_command("--transport", "http", "--port", str(port), *args)
    process = subprocess.Popen([command.command, *command.args], env=command.env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "the HTTP server exited at start-up"
                assert time.monotonic() < deadline, "the HTTP server never listened"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def http_server() -> Iterator[str]:
    """The console script serving streamable HTTP with default settings; its URL."""
    with serving_http() as url:
        yield url
