"""Load and isolation: many clients debate at once on one council server over HTTP.

    python tests/interop/load.py [CLIENTS]

Each client (default 20) has its own scripted LLM that signs every answer with the
client's name, and runs a full council debate (19 sampling requests) on a topic of its
own, all at the same time. Every debate must complete; every answer in a client's
result must carry its own signature and none another's, and every request a client's
LLM receives must be about its own debate. It runs once per era on the same server:
legacy clients (`initialize`, 2025-11-25: the server pushes the requests, one
tools/call per debate), then modern ones (2026-07-28: each debate takes 4 tools/call,
its rounds of 9, 9 and 1 requests answered in input_required results, every round of
every debate replayed by the server). Prints the figures the README records.
"""

from __future__ import annotations

import json
import re
import sys
import time

import anyio
from fastmcp import Client
from harness import server_environment, serving_http
from mcp.types import (
    CreateMessageResult,
    CreateMessageResultWithTools,
    SamplingCapability,
    SamplingToolsCapability,
    TextContent,
    ToolUseContent,
)
from py_clients import MODES, count_tool_calls

SIGNATURE = re.compile(r"client-\d\d")
WITH_TOOLS = SamplingCapability(tools=SamplingToolsCapability())


class SigningLLM:
    """Answers every request of one client, signed with the client's name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.prompts: list[str] = []

    async def __call__(self, messages, params, context):
        self.prompts.append(json.dumps(params.model_dump(mode="json")))
        await anyio.sleep(0.01)  # a model takes time; let the clients interleave
        if params.tools:  # a ballot: structured output through final_response
            vote = {"option": "A", "reasoning": f"[{self.name}] A convinced me."}
            return CreateMessageResultWithTools(
                role="assistant",
                content=[
                    ToolUseContent(
                        type="tool_use", id="vote", name="final_response", input=vote
                    )
                ],
                model=self.name,
                stopReason="toolUse",
            )
        return CreateMessageResult(
            role="assistant",
            content=TextContent(type="text", text=f"[{self.name}] My view, signed."),
            model=self.name,
            stopReason="endTurn",
        )


ROUNDS = {"legacy": [], "modern": [9, 9, 1]}
"""The sampling requests of each input_required round of one debate."""
TOOL_CALLS_PER_DEBATE = {"legacy": 1, "modern": 4}


def foreign_signatures(text: str, own: str) -> set[str]:
    return set(SIGNATURE.findall(text)) - {own}


async def debate(url: str, era: str, name: str, outcome: dict) -> None:
    llm = SigningLLM(name)
    topic = f"Should {name}'s team adopt a four-day week?"
    traffic: dict = {"calls": [], "rounds": []}
    try:
        async with Client(
            url,
            mode=MODES[era],
            sampling_handler=llm,
            sampling_capabilities=WITH_TOOLS,
            timeout=300,
        ) as client:
            count_tool_calls(client, traffic)
            with anyio.fail_after(300):
                result = await client.call_tool("council_debate", {"topic": topic})
    except Exception as error:  # noqa: BLE001  # a failure is a figure, not a crash
        outcome["failures"].append(f"{name}: {error}")
        return
    record = result.structured_content
    answers = [o["text"] for o in record["opinions"]]
    answers += [v["reasoning"] for v in record["votes"]] + [record["synthesis"]]
    unsigned = [answer for answer in answers if f"[{name}]" not in answer]
    leaked = foreign_signatures(json.dumps(record), name)
    leaked |= {
        other for prompt in llm.prompts for other in foreign_signatures(prompt, name)
    }
    off_topic = [prompt for prompt in llm.prompts if name not in prompt]
    if unsigned or leaked or off_topic:
        outcome["leaks"].append(
            f"{name}: {len(unsigned)} unsigned answers, signatures of {sorted(leaked)}, "
            f"{len(off_topic)} requests about another debate"
        )
    outcome["calls"] += record["calls_made"]
    outcome["requests"] += len(llm.prompts)
    rounds = [len(r["request_keys"]) for r in traffic["rounds"]]
    if rounds != ROUNDS[era]:
        outcome["failures"].append(f"{name}: rounds of {rounds} requests")
    outcome["tool_calls"] += len(traffic["calls"])
    outcome["states"] += [r["state_bytes"] for r in traffic["rounds"]]


async def run(url: str, era: str, clients: int) -> dict:
    outcome: dict = {
        "failures": [],
        "leaks": [],
        "calls": 0,
        "requests": 0,
        "tool_calls": 0,
        "states": [],
    }
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for number in range(clients):
            group.start_soon(debate, url, era, f"client-{number:02d}", outcome)
    outcome["seconds"] = time.perf_counter() - started
    return outcome


def main(clients: int) -> int:
    failed = False
    with (
        server_environment() as env,
        serving_http(["council", "--transport", "http"], env) as url,
    ):
        for era in ("legacy", "modern"):
            outcome = anyio.run(run, url, era, clients)
            states = outcome["states"]
            state = (
                f", requestState {min(states) / 1000:.1f}-{max(states) / 1000:.1f} kB"
                if states
                else ""
            )
            print(
                f"load, {era} era: {clients} clients, {clients} debates at once over "
                f"HTTP, {outcome['tool_calls']} tools/call, {outcome['requests']} "
                f"sampling requests ({outcome['calls']} counted by the server), "
                f"{len(outcome['failures'])} failures, {len(outcome['leaks'])} leaks, "
                f"{outcome['seconds']:.1f} s{state}"
            )
            for problem in outcome["failures"] + outcome["leaks"]:
                print(f"  {problem}")
            expected = 19 * clients
            tool_calls = TOOL_CALLS_PER_DEBATE[era] * clients
            failed |= bool(outcome["failures"] or outcome["leaks"])
            failed |= not outcome["requests"] == outcome["calls"] == expected
            failed |= outcome["tool_calls"] != tool_calls
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
