"""fast-agent, with its echoing `passthrough` model, calls the summarizer.

    python tests/interop/fast_agent_check.py /path/to/summarizer

Runs in an environment holding `fast-agent-mcp` (Python >= 3.12; its `mcp` 2.x cannot
share one with the servers), against the summarizer console script given, over stdio
and streamable HTTP. fast-agent declares sampling with tools and answers the server's
sampling request with `passthrough`, which echoes the prompt: the summary must be the
server's fenced prompt with the document inside.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from harness import server_environment, serving_http

DOCUMENT = "Otters hold hands while sleeping so they do not drift apart."


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


async def summarize(server: dict, home: Path) -> str:
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
        result = await app.caller.call_tool("summarizer__summarize", {"text": DOCUMENT})
    if result.is_error:
        raise RuntimeError(result.content[0].text)
    return "\n".join(block.text for block in result.content)


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
        for transport, server in servers.items():
            with tempfile.TemporaryDirectory() as home:
                try:
                    summary = asyncio.run(summarize(server, Path(home)))
                    echoed = DOCUMENT in summary and "<<<BEGIN UNTRUSTED" in summary
                    problem = "" if echoed else f"not the echoed prompt: {summary!r}"
                except Exception as error:  # noqa: BLE001  # report, then go on
                    problem = f"{type(error).__name__}: {error}"
            failures += bool(problem)
            print(
                f"{'ok  ' if not problem else 'FAIL'} fast-agent {transport:5} {problem}"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
