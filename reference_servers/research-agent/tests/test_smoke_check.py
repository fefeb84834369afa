"""scripts/smoke_check.py, the check operators run against a deployment, against the
server itself: it passes and names every tool, and a wrong token fails it in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import serving_http
from fastmcp import Client

from research_agent.server import create_server

pytestmark = pytest.mark.process

SMOKE_CHECK = Path(__file__).parents[1] / "scripts" / "smoke_check.py"
TOKEN = "s3cret-token-for-the-smoke-check"


def smoke_check(url: str, *args: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SMOKE_CHECK), url, *args],
        env={**os.environ, "MCP_HTTP_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_smoke_check_passes_on_both_eras_and_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with Client(create_server()) as client:
        tools = sorted(tool.name for tool in await client.list_tools())
    monkeypatch.setenv("MCP_HTTP_TOKEN", TOKEN)
    with serving_http() as url:
        expect = [f"--expect={name}" for name in tools]
        passed = smoke_check(url, *expect, token=TOKEN)
        wrong_token = smoke_check(url, token="not-the-token")
        missing_tool = smoke_check(url, "--expect=no_such_tool", token=TOKEN)

    base = url.removesuffix("/mcp")
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout == (
        f"smoke check ok: {base}: {len(tools)} tools on both eras: {', '.join(tools)}\n"
    )
    assert (wrong_token.returncode, wrong_token.stdout) == (1, "")
    assert wrong_token.stderr == (
        "smoke check FAILED: initialize: HTTP 401: is the token right?\n"
    )
    assert missing_tool.returncode == 1
    assert missing_tool.stderr.startswith(
        "smoke check FAILED: tools/list: no no_such_tool among "
    )
