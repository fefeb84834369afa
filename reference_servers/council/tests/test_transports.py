"""The real thing: the console script as a subprocess, over stdio and HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import serving_http, stdio_session
from fastmcp import Client

from council import __version__
from council.server import create_server


async def expected_tool_names() -> set[str]:
    async with Client(create_server()) as client:
        return {tool.name for tool in await client.list_tools()}


async def test_stdio_speaks_only_protocol_on_stdout_and_logs_to_stderr(
    tmp_path: Path,
) -> None:
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as stderr:
        async with stdio_session("--log-level", "DEBUG", errlog=stderr) as session:
            tools = await session.list_tools()
            await session.send_ping()
    assert {tool.name for tool in tools.tools} == await expected_tool_names()
    assert "serving on stdio" in stderr_path.read_text()


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "council", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == __version__


async def test_streamable_http_serves_a_stateful_session(http_server: str) -> None:
    async with Client(http_server) as client:
        assert await client.ping()
        tools = await client.list_tools()
    assert {tool.name for tool in tools} == await expected_tool_names()


def initialize(url: str, **headers: str) -> httpx.Response:
    """A raw `initialize` request, with the headers a test wants to forge."""
    return httpx.post(
        url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "probe", "version": "0"},
            },
        },
        headers={"Accept": "application/json, text/event-stream", **headers},
    )


def test_a_foreign_host_or_origin_is_refused(http_server: str) -> None:
    port = httpx.URL(http_server).port
    assert initialize(http_server).status_code == 200
    assert initialize(http_server, Host=f"localhost:{port}").status_code == 200
    # A page on evil.example whose name was rebound to 127.0.0.1:
    assert initialize(http_server, Host=f"evil.example:{port}").status_code == 421
    assert initialize(http_server, Origin="http://evil.example").status_code == 403


def test_allowed_hosts_extend_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HTTP_ALLOWED_HOSTS", "mcp.example.test, *.internal.test")
    with serving_http() as url:
        assert initialize(url, Host="mcp.example.test").status_code == 200
        assert initialize(url, Host="a.internal.test:8000").status_code == 200
        assert initialize(url, Host="example.test").status_code == 421


async def test_with_a_token_every_request_must_carry_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "s3cret-token-for-tests"
    monkeypatch.setenv("MCP_HTTP_TOKEN", token)
    with serving_http() as url:
        assert initialize(url).status_code == 401
        assert initialize(url, Authorization="Bearer wrong").status_code == 401
        assert initialize(url, Authorization=f"Bearer {token}").status_code == 200
        async with Client(url, auth=token) as client:
            tools = await client.list_tools()
    assert {tool.name for tool in tools} == await expected_tool_names()
