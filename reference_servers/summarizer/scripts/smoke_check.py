"""Check a running deployment of this server: `python scripts/smoke_check.py URL`.

URL is where it answers, e.g. https://mcp.example.com; the token is MCP_HTTP_TOKEN (or
--token, which other users of the machine can see). Checks: /health and /ready answer
200; /mcp refuses a request without the token (401); the 2025-11-25 handshake
(`initialize`, `tools/list` in the session) and the 2026-07-28 one (`server/discover`,
`tools/list`) list the same tools, with each `--expect NAME`. Prints one line: what
failed (exit status 1) or the tools found (0). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import Any

LEGACY, MODERN = "2025-11-25", "2026-07-28"
CLIENT = {"name": "smoke-check", "version": "1"}
MODERN_PARAMS = {  # each 2026-07-28 request names its version and client
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": CLIENT,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
}


class Failed(Exception):
    """What failed, in one line."""


def http(url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """GET `url` (or POST `body`): status, headers, JSON reply (or an event stream's)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, headers or {})
    request.add_header("Accept", "application/json, text/event-stream")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as response:
            if response.headers.get_content_type() == "text/event-stream":
                return response.status, response.headers, from_events(response)
            reply = response.read() or b"{}"  # a notification's 202 has no body
            return response.status, response.headers, json.loads(reply)
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode(errors="replace")
    except (OSError, ValueError) as error:
        raise Failed(f"{url}: {getattr(error, 'reason', error)}") from None


def from_events(lines: Any) -> Any:
    """The first JSON-RPC reply in a server-sent event stream.

    >>> from_events([b"event: message\\n", b'data: {"id": 1, "result": {}}\\n', b"\\n"])
    {'id': 1, 'result': {}}
    """
    data: list[str] = []
    for line in (raw.decode().rstrip("\r\n") for raw in lines):
        if line.startswith("data:"):
            data.append(line.removeprefix("data:").lstrip())
        elif not line and data:
            message = json.loads("\n".join(data))
            if "result" in message or "error" in message:
                return message
            data = []
    raise ValueError("the event stream ended without a reply")


def rpc(url: str, method: str, params: dict[str, Any], headers: dict[str, str]) -> Any:
    """The response headers and result of a JSON-RPC request, or Failed."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    status, reply_headers, reply = http(url, body, headers)
    if status != 200 or not isinstance(reply, dict) or "result" not in reply:
        why = "is the token right?" if status == 401 else json.dumps(reply)[:200]
        raise Failed(f"{method}: HTTP {status}: {why}")
    return reply_headers, reply["result"]


def check(base: str, token: str, expect: list[str]) -> str:
    """Every check, in order; a summary of what was found, or Failed."""
    mcp, bearer = f"{base}/mcp", {"Authorization": f"Bearer {token}"}
    for path in ("/health", "/ready"):
        status, _, reply = http(base + path)
        if status != 200:
            raise Failed(f"GET {path}: HTTP {status}: {json.dumps(reply)[:200]}")
    if (status := http(mcp, {"jsonrpc": "2.0", "id": 1, "method": "ping"})[0]) != 401:
        raise Failed(f"POST /mcp without the token: HTTP {status}, not 401")
    hello = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT}
    headers, _ = rpc(mcp, "initialize", hello, bearer)
    session = {**bearer, "Mcp-Protocol-Version": LEGACY}
    session["Mcp-Session-Id"] = headers.get("Mcp-Session-Id", "")
    http(mcp, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    listed = rpc(mcp, "tools/list", {}, session)[1]["tools"]
    legacy = sorted(tool["name"] for tool in listed)
    stateless = {**bearer, "Mcp-Protocol-Version": MODERN}
    discover = {**stateless, "Mcp-Method": "server/discover"}
    found = rpc(mcp, "server/discover", MODERN_PARAMS, discover)[1]
    versions = found.get("supportedVersions")
    if MODERN not in (versions or []):
        raise Failed(f"server/discover: {MODERN} not among {versions}")
    listing = {**stateless, "Mcp-Method": "tools/list"}
    listed = rpc(mcp, "tools/list", MODERN_PARAMS, listing)[1]["tools"]
    modern = sorted(tool["name"] for tool in listed)
    if legacy != modern:
        raise Failed(f"tools/list: {LEGACY} lists {legacy}, {MODERN} lists {modern}")
    if missing := [name for name in expect if name not in modern]:
        raise Failed(f"tools/list: no {', '.join(missing)} among {modern}")
    return f"{len(modern)} tools on both eras: {', '.join(modern)}"


def wait_for_health(base: str, seconds: float) -> None:
    """Until /health answers 200, for at most `seconds` (the checks then say why)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Failed):
            if http(f"{base}/health")[0] == 200:
                return
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="e.g. https://mcp.example.com")
    parser.add_argument("--token", default=os.environ.get("MCP_HTTP_TOKEN"))
    parser.add_argument("--expect", action="append", default=[], metavar="TOOL")
    parser.add_argument("--wait", type=float, default=0, help="seconds for /health")
    parser.add_argument("--timeout", type=float, default=10, help="seconds a request")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no token: set MCP_HTTP_TOKEN or pass --token")
    socket.setdefaulttimeout(args.timeout)  # for every request
    base = args.url.rstrip("/").removesuffix("/mcp")
    try:
        wait_for_health(base, args.wait)
        summary = check(base, args.token, args.expect)
    except Failed as failure:
        print(f"smoke check FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"smoke check ok: {base}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
