"""The official TypeScript SDK clients (v1 and v2) drive every reference server.

    python tests/interop/ts_clients.py NODE_DIR

NODE_DIR holds this folder's JavaScript files with `npm ci` run in it (the nox session
prepares it outside the checkout). Each reference server runs its scenario from
`scenarios/<server>.json` with each client, over stdio and streamable HTTP, as a client
with sampling tools, with text-only sampling, and without sampling. A run passes when
the tool's result, the number and kind of sampling requests, and the shape of every
request's history are what the scenario expects. A scenario with `cancel_after` also
runs with the client cancelling the tool call while that many sampling requests are
open: the server must then cancel each of them (`notifications/cancelled`).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import REFERENCE_SERVERS, server_environment, serving_http

HERE = Path(__file__).resolve().parent
CLIENTS = ["v1", "v2"]
PROFILES = ["tools", "text", "none"]


def history_problems(request: dict) -> list[str]:
    """SEP-1577's rule: every `tool_use` is answered by the next message, by id."""
    messages = [
        message["content"]
        if isinstance(message["content"], list)
        else [message["content"]]
        for message in request["messages"]
    ]
    problems = []
    for current, following in itertools.pairwise(messages):
        calls = {block["id"] for block in current if block["type"] == "tool_use"}
        answered = {
            block["toolUseId"] for block in following if block["type"] == "tool_result"
        }
        if calls != answered:
            problems.append(
                f"tool calls {sorted(calls)} answered by {sorted(answered)}"
            )
    return problems


def check(out: dict, expect: dict) -> list[str]:
    """What is wrong with one client run's output."""
    if "error" in out:
        return [f"client failed: {out['error']}"]
    result, requests = out["result"], out["requests"]
    text = json.dumps(result.get("structuredContent")) + " ".join(
        block.get("text", "") for block in result.get("content", [])
    )
    if "error_contains" in expect:
        if result.get("isError") and expect["error_contains"] in text:
            return []
        return [
            f"expected a tool error with {expect['error_contains']!r}: {text[:300]}"
        ]
    problems = []
    if result.get("isError"):
        problems.append(f"tool error: {text[:300]}")
    elif expect["result_contains"] not in text:
        problems.append(f"result lacks {expect['result_contains']!r}: {text[:300]}")
    if len(requests) != expect["requests"]:
        problems.append(
            f"{len(requests)} sampling requests, expected {expect['requests']}"
        )
    with_tools = sum(bool(request.get("tools")) for request in requests)
    if with_tools != expect["with_tools"]:
        problems.append(
            f"{with_tools} requests with tools, expected {expect['with_tools']}"
        )
    for request in requests:
        problems += history_problems(request)
    if out["unused_replies"] or out["problems"]:
        problems.append(f"script not followed: {out['unused_replies']} unused replies")
    return problems


def cancellation_problems(out: dict, client: str) -> list[str]:
    """The client cancelled the tool call: the server must cancel each open request."""
    if "error" in out:
        return [f"client failed: {out['error']}"]
    expected = len(out["requests"])
    # SDK v1 ignores notifications/cancelled for request id 0 (its `_oncancel` tests
    # `!requestId`), and the server's first request on a session has id 0.
    if client == "v1" and 0 in out["request_ids"]:
        expected -= 1
    if out["cancelled"] != expected:
        return [f"{out['cancelled']} of {len(out['requests'])} requests cancelled"]
    return []


def cases(script: dict) -> list[tuple[str, list[str]]]:
    """Each run of a scenario: a label and the client's arguments besides the target."""
    runs = [(profile, ["--profile", profile]) for profile in PROFILES]
    if "cancel_after" in script:
        runs.append(
            (
                "cancel",
                ["--profile", "tools", "--cancel-after", str(script["cancel_after"])],
            )
        )
    return runs


def run(arguments: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(
        ["node", *arguments],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"error": f"no result; stderr: {done.stderr[-800:]}"}


def main(node_dir: Path) -> int:
    failures = runs = 0
    started = time.monotonic()
    with server_environment() as env:
        for scenario in sorted((HERE / "scenarios").glob("*.json")):
            server, script = scenario.stem, json.loads(scenario.read_text())
            with serving_http([server, "--transport", "http"], env) as url:
                targets = {"stdio": ["--command", server], "http": ["--url", url]}
                for client, (transport, target), (label, options) in itertools.product(
                    CLIENTS, targets.items(), cases(script)
                ):
                    client_script = str(node_dir / f"client-{client}.mjs")
                    arguments = [client_script, "--transport", transport, *target]
                    out = run([*arguments, *options, str(scenario)], env)
                    problems = (
                        cancellation_problems(out, client)
                        if label == "cancel"
                        else check(out, script["expect"][label])
                    )
                    runs += 1
                    failures += bool(problems)
                    print(
                        f"{'ok  ' if not problems else 'FAIL'} {client} {transport:5} "
                        f"{label:6} {server:14} {out.get('call_ms', 0):5} ms  "
                        f"{'; '.join(problems)}",
                        flush=True,
                    )
    print(
        f"TypeScript clients: {runs} runs, {failures} failed, "
        f"{time.monotonic() - started:.0f} s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    if not (REFERENCE_SERVERS / "council").is_dir():
        sys.exit("run from a checkout of copier-mcp-sampling")
    sys.exit(main(Path(sys.argv[1]).resolve()))
