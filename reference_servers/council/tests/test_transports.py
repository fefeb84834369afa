"""The real thing: the console script as a subprocess, over stdio and HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import stdio_session
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
