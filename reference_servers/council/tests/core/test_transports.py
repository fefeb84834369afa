"""The real thing: the server as a subprocess, over stdio and HTTP.

HTTP safety holds however the server is started: its console script or `fastmcp run`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import RUNNERS, server_command, serving_http, stdio_session
from fastmcp import Client

from council import __version__
from council.server import create_server

pytestmark = pytest.mark.process


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


async def test_streamable_http_serves_both_eras(http_server: str) -> None:
    async with Client(http_server, mode="legacy") as client:  # a session
        assert await client.ping()
        legacy = await client.list_tools()
    async with Client(http_server, mode="2026-07-28") as client:  # no session
        modern = await client.list_tools()
    assert {tool.name for tool in legacy} == await expected_tool_names()
    assert {tool.name for tool in modern} == await expected_tool_names()


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


def ping(url: str, session_id: str) -> httpx.Response:
    return httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
        headers={
            "Accept": "application/json, text/event-stream",
            "Mcp-Session-Id": session_id,
            "Mcp-Protocol-Version": "2025-11-25",
        },
    )


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_foreign_host_or_origin_is_refused(runner: str) -> None:
    with serving_http(runner=runner) as url:
        port = httpx.URL(url).port
        assert initialize(url).status_code == 200
        assert initialize(url, Host=f"localhost:{port}").status_code == 200
        # A page on evil.example whose name was rebound to 127.0.0.1:
        assert initialize(url, Host=f"evil.example:{port}").status_code == 421
        assert initialize(url, Origin="http://evil.example").status_code == 403
        # Loopback before a colon, something else after it:
        malformed = initialize(url, Host=f"127.0.0.1:{port}@evil.example")
        assert malformed.status_code == 400


@pytest.mark.parametrize("runner", RUNNERS)
def test_allowed_hosts_extend_loopback(
    monkeypatch: pytest.MonkeyPatch, runner: str
) -> None:
    monkeypatch.setenv("MCP_HTTP_ALLOWED_HOSTS", "mcp.example.test, *.internal.test")
    with serving_http(runner=runner) as url:
        assert initialize(url, Host="mcp.example.test").status_code == 200
        assert initialize(url, Host="a.internal.test:8000").status_code == 200
        assert initialize(url, Host="example.test").status_code == 421


def test_health_and_readiness_answer_without_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MCP_HTTP_TOKEN", "s3cret-token-for-tests")
    with serving_http() as url:
        base = url.removesuffix("/mcp")
        health = httpx.get(f"{base}/health")
        ready = httpx.get(f"{base}/ready")
        assert initialize(url).status_code == 401  # the MCP endpoint still needs it
    assert (health.status_code, health.json()) == (200, {"healthy": True})
    assert ready.status_code == 200
    assert ready.json()["ready"] is True


@pytest.mark.parametrize("runner", RUNNERS)
async def test_with_a_token_every_request_must_carry_it(
    monkeypatch: pytest.MonkeyPatch, runner: str
) -> None:
    token = "s3cret-token-for-tests"
    monkeypatch.setenv("MCP_HTTP_TOKEN", token)
    with serving_http(runner=runner) as url:
        assert initialize(url).status_code == 401
        assert initialize(url, Authorization="Bearer wrong").status_code == 401
        assert initialize(url, Authorization=f"Bearer {token}").status_code == 200
        async with Client(url, auth=token) as client:
            tools = await client.list_tools()
    assert {tool.name for tool in tools} == await expected_tool_names()


def run_to_exit(*args: str, runner: str) -> subprocess.CompletedProcess[str]:
    """Start the server and wait for it to stop (it must refuse to start)."""
    command = server_command(*args, runner=runner)
    return subprocess.run(
        [command.command, *command.args],
        env=command.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_bad_setting_stops_every_runner_with_the_same_message(
    monkeypatch: pytest.MonkeyPatch, runner: str
) -> None:
    monkeypatch.setenv("MCP_SAMPLING_TIMEOUT", "soon")
    stopped = run_to_exit(runner=runner)
    assert stopped.returncode == 2
    assert (
        "invalid configuration:\n  MCP_SAMPLING_TIMEOUT (--sampling-timeout): "
        "Input should be a valid number"
    ) in stopped.stderr
    assert "Traceback" not in stopped.stderr


@pytest.mark.parametrize("runner", RUNNERS)
def test_no_runner_serves_http_beyond_loopback_without_a_token(runner: str) -> None:
    stopped = run_to_exit("--transport", "http", "--host", "0.0.0.0", runner=runner)
    assert stopped.returncode != 0
    # FastMCP's runner logs through rich, which wraps long lines.
    assert "set MCP_HTTP_TOKEN" in " ".join(stopped.stderr.split())


async def test_a_flood_of_abandoned_sessions_never_locks_a_client_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MCP_HTTP_MAX_SESSIONS", "5")
    monkeypatch.setenv("MCP_LOG_LEVEL", "INFO")
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as stderr, serving_http(stderr=stderr) as url:
        abandoned = [initialize(url).headers["mcp-session-id"] for _ in range(20)]
        async with Client(url) as client:
            tools = await client.list_tools()
        assert ping(url, abandoned[0]).status_code == 404  # ended to make room
        assert ping(url, abandoned[-1]).status_code == 200  # the newest stay
    assert {tool.name for tool in tools} == await expected_tool_names()
    # Session ids are bearer credentials: none is written to the log.
    logs = stderr_path.read_text()
    assert "Created new transport" in logs
    assert not [session for session in abandoned if session in logs]
