"""fast-agent, with its echoing `passthrough` model, calls the summarizer on both eras.

    python tests/interop/fast_agent_check.py /path/to/summarizer

Runs in an environment holding `fast-agent-mcp` (Python >= 3.12, and its own pins of
`mcp` 2.x and FastMCP), against the summarizer console script given, over stdio and
streamable HTTP, with the server's `protocol_mode` forced to `legacy` (`initialize`,
2025-11-25: the server pushes its sampling request) and to `modern` (2026-07-28: the
tool call returns the request in an input_required result, and fast-agent answers it
and calls again). fast-agent declares sampling with tools and answers with
`passthrough`, which echoes the prompt: the summary must be the server's fenced prompt
with the document inside. The protocol version is the one fast-agent negotiated, and
the tools/call requests are counted on its SDK session: one on the legacy era, two on
the modern one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import server_environment, serving_http

DOCUMENT = "Otters hold hands while sleeping so they do not drift apart."
ERAS = {"legacy": ("2025-11-25", 1), "modern": ("2026-07-28", 2)}
"""fast-agent's `protocol_mode`: the version it must negotiate, the tools/call it sends."""


def configuration(server: dict) -> dict:
    """fast-agent's settings: one server, `passthrough` everywhere, nothing written."""
    return {
        "default_model": "passthrough",
        "session_history": False,
        "logger": {"type": "none", "progress_display": False, "show_chat": False},
        "mcp": {
            "servers": {"summarizer": {**server, "sampling": {"model": "passthrough"}}}
        },
    }


def count_tool_calls(app: Any, name: str) -> tuple[str, list[int]]:
    """The protocol version of fast-agent's connection to server `name`; a list that
    grows by one for each tools/call its SDK session sends (fast-agent's internals, as
    of the pinned release)."""
    manager = app.caller.aggregator._persistent_connection_manager
    connection = manager.running_servers[name]
    session = connection.client.client.session
    send = session.call_tool
    calls: list[int] = []

    async def call_tool(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(kwargs.get("input_responses") or {}))
        return await send(*args, **kwargs)

    session.call_tool = call_tool
    return connection.protocol_version, calls


async def summarize(server: dict, home: Path) -> tuple[str, str, list[int]]:
    from fast_agent import FastAgent

    config = home / "fastagent.config.yaml"
    config.write_text(json.dumps(configuration(server)))  # JSON is YAML
    fast = FastAgent(
        "interop",
        config_path=str(config),
        parse_cli_args=False,
        quiet=True,
        isolated=True,
        home=str(home),
    )

    @fast.agent(name="caller", servers=["summarizer"], model="passthrough")
    async def caller() -> None: ...

    async with fast.run() as app:
        version, calls = count_tool_calls(app, "summarizer")
        result = await app.caller.call_tool("summarizer__summarize", {"text": DOCUMENT})
    if result.is_error:
        raise RuntimeError(result.content[0].text)
    return "\n".join(block.text for block in result.content), version, calls


def main(summarizer: str) -> int:
    failures = 0
    with (
        server_environment() as env,
        serving_http([summarizer, "--transport", "http"], env) as url,
    ):
        servers = {
            "stdio": {"transport": "stdio", "command": summarizer, "env": env},
            "http": {"transport": "http", "url": url},
        }
        for era, (transport, server) in (
            (era, target) for era in ERAS for target in servers.items()
        ):
            expected_version, expected_calls = ERAS[era]
            calls: list[int] = []
            with tempfile.TemporaryDirectory() as home:
                try:
                    summary, version, calls = asyncio.run(
                        asyncio.wait_for(
                            summarize({**server, "protocol_mode": era}, Path(home)),
                            timeout=120,
                        )
                    )
                    problems = []
                    if not (DOCUMENT in summary and "<<<BEGIN UNTRUSTED" in summary):
                        problems.append(f"not the echoed prompt: {summary!r}")
                    if version != expected_version:
                        problems.append(f"protocol {version}, not {expected_version}")
                    if len(calls) != expected_calls:
                        problems.append(
                            f"{len(calls)} tools/call, expected {expected_calls}"
                        )
                    problem = "; ".join(problems)
                except Exception as error:  # noqa: BLE001  # report, then go on
                    problem = f"{type(error).__name__}: {error}"
            failures += bool(problem)
            answers = "+".join(str(count) for count in calls[1:]) or "-"
            print(
                f"{'ok  ' if not problem else 'FAIL'} fast-agent {era:6} {transport:5} "
                f"{len(calls)} tools/call (answers {answers})  {problem}"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
