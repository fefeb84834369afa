"""The Python SDK's client (FastMCP 4's `Client` on `mcp` 2.x) drives every reference server.

    python tests/interop/py_clients.py

Runs in an environment holding the reference servers (so `fastmcp` 4 is importable).
Each reference server runs its scenario from `scenarios/<server>.json` over stdio and
streamable HTTP, on both eras — `Client(..., mode="legacy")` (`initialize`, 2025-11-25:
the server pushes sampling requests) and `Client(..., mode="2026-07-28")` (sampling by
MRTR: the client answers every request of an input_required round concurrently and
retries the call by itself) — as a client with sampling tools, with text-only sampling,
and without sampling; servers side by side (`harness.each_server_at_once`), each
server's runs in order. The scripted LLM answers by the scenario's rules, as the
TypeScript clients do (`checks.reply_to`), and `checks.check` judges the output. The
tools/call requests are counted on the client's session: every `call_tool` it sends,
with the answers and requestState it carries, and every input_required result.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from checks import check, reply_to, rounds_summary
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from harness import (
    REFERENCE_SERVERS,
    each_server_at_once,
    server_environment,
    serving_http,
)
from mcp.types import (
    CreateMessageResult,
    CreateMessageResultWithTools,
    InputRequiredResult,
    SamplingCapability,
    SamplingToolsCapability,
    TextContent,
    ToolUseContent,
)

HERE = Path(__file__).resolve().parent
MODES = {"legacy": "legacy", "modern": "2026-07-28"}
CAPABILITIES = {
    "tools": SamplingCapability(tools=SamplingToolsCapability()),
    "text": SamplingCapability(),
    "none": None,
}
CALL_SECONDS = 120


class ScriptedLLM:
    """Answers by the scenario's rules; records each request and its answer."""

    def __init__(self, rules: list[dict], profile: str) -> None:
        self.rules = rules
        self.profile = profile
        self.requests: list[dict] = []
        self.answers: list[Any] = []
        self.problems: list[str] = []

    async def __call__(self, messages, params, context):
        request = params.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.requests.append(request)
        reply = reply_to(self.rules, self.profile, request)
        self.answers.append(reply)
        if reply is None:
            problem = f"no rule answers sampling request #{len(self.requests)}"
            self.problems.append(problem)
            raise RuntimeError(problem)
        await anyio.sleep(0.01)  # let concurrent requests overlap
        return to_result(reply)


def to_result(reply: Any) -> CreateMessageResult | CreateMessageResultWithTools:
    if isinstance(reply, dict) and "tool_use" in reply:
        calls = reply["tool_use"]
        return CreateMessageResultWithTools(
            role="assistant",
            model="scripted",
            stop_reason="toolUse",
            content=[
                ToolUseContent(type="tool_use", **call)
                for call in (calls if isinstance(calls, list) else [calls])
            ],
        )
    if isinstance(reply, dict) and "error" in reply:
        raise RuntimeError(reply["error"])
    text = (
        json.dumps(reply["json"], separators=(",", ":"), ensure_ascii=False)
        if isinstance(reply, dict)
        else reply
    )
    return CreateMessageResult(
        role="assistant",
        model="scripted",
        stop_reason="endTurn",
        content=TextContent(type="text", text=text),
    )


def count_tool_calls(client: Client, traffic: dict) -> None:
    """Record every tools/call the client's session sends, and each input_required."""
    session = client.session
    send = session.call_tool
    states: list[str | None] = []

    async def call_tool(*args: Any, **kwargs: Any) -> Any:
        state = kwargs.get("request_state")
        traffic["calls"].append(
            {
                "response_keys": sorted(kwargs.get("input_responses") or {}),
                "state_bytes": len(state or ""),
                "state_echoed": None if state is None else state == states[-1],
            }
        )
        result = await send(*args, **kwargs)
        if isinstance(result, InputRequiredResult):
            states.append(result.request_state)
            traffic["rounds"].append(
                {
                    "request_keys": sorted(result.input_requests or {}),
                    "state_bytes": len(result.request_state or ""),
                }
            )
        return result

    session.call_tool = call_tool  # type: ignore[method-assign]


async def run_one(target: Any, script: dict, era: str, profile: str) -> dict:
    out: dict = {"client": "python", "era": era, "profile": profile}
    llm = ScriptedLLM(script.get("rules", []), profile)
    capabilities = CAPABILITIES[profile]
    traffic: dict = {"calls": [], "rounds": []}
    try:
        with anyio.fail_after(CALL_SECONDS):
            async with Client(
                target,
                mode=MODES[era],
                sampling_handler=llm if capabilities else None,
                sampling_capabilities=capabilities,
                timeout=CALL_SECONDS,
                init_timeout=30,
            ) as client:
                count_tool_calls(client, traffic)
                started = time.perf_counter()
                result = await client.call_tool_mcp(
                    script["tool"], script.get("arguments", {})
                )
                out["call_ms"] = round((time.perf_counter() - started) * 1000)
                out["protocol_version"] = client.protocol_version
    except Exception as error:  # noqa: BLE001  # a failure is a finding, not a crash
        out["error"] = f"{type(error).__name__}: {error}"
        return out
    out["result"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    out.update(
        requests=llm.requests,
        answers=llm.answers,
        problems=llm.problems,
        traffic=traffic,
    )
    return out


def check_server(scenario: Path, env: dict[str, str]) -> list[bool]:
    """Every run of one reference server's scenario, in order: whether each failed."""
    server, script = scenario.stem, json.loads(scenario.read_text())
    failed = []
    with serving_http([server, "--transport", "http"], env) as url:
        targets = {
            # A process of its own for each run; its log (tool errors) dropped, as the
            # TypeScript runs drop it.
            "stdio": lambda: StdioTransport(
                server, [], env=env, keep_alive=False, log_file=Path(os.devnull)
            ),
            "http": lambda: url,
        }
        for era, (transport, target), profile in itertools.product(
            MODES, targets.items(), ["tools", "text", "none"]
        ):
            out = anyio.run(run_one, target(), script, era, profile)
            problems = check(out, script, profile, era)
            print(
                f"{'ok  ' if not problems else 'FAIL'} python {era:6} "
                f"{transport:5} {profile:6} {server:14} "
                f"{out.get('call_ms', 0):5} ms  {rounds_summary(out):32} "
                f"{'; '.join(problems)}",
                flush=True,
            )
            failed.append(bool(problems))
    return failed


def main() -> int:
    started = time.monotonic()
    with server_environment() as env:
        scenarios = sorted((HERE / "scenarios").glob("*.json"))
        failed = [
            run_failed
            for server_failed in each_server_at_once(
                functools.partial(check_server, scenario, env) for scenario in scenarios
            )
            for run_failed in server_failed
        ]
    print(
        f"Python client (FastMCP 4 / mcp 2.x): {len(failed)} runs, {sum(failed)} "
        f"failed, {time.monotonic() - started:.0f} s"
    )
    return 1 if any(failed) else 0


if __name__ == "__main__":
    if not (REFERENCE_SERVERS / "council").is_dir():
        sys.exit("run from a checkout of copier-mcp-sampling")
    sys.exit(main())
