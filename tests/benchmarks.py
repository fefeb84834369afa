"""Benchmarks for `nox -s bench`: figures, not pass/fail.

Run inside an environment where the `council` and `summarizer` reference servers are
installed. A scripted LLM answers every request after a fixed latency L; it is installed
as the server-side LLM, which the server calls concurrently (FastMCP's test client would
answer one request at a time and hide all concurrency).

1. council debate (19 calls, 3 rounds) at the default concurrency vs concurrency 1;
2. summarizer on ~1 MB of text vs its number of sequential request waves times L;
3. per-call overhead of the gateway vs a bare `ctx.sample`, over stdio (median).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import statistics
import sys
import textwrap
import time

from fastmcp import Client
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from summarizer.core.testing import final_answer, sampling_callback

LATENCY = 0.1
OVERHEAD_CALLS = 200
REPLY = "A short answer of about sixty characters, for every request."


class SlowLLM:
    """Answers after LATENCY: opinions, ballots (first option), summaries."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, messages, params, context):
        self.calls += 1
        await asyncio.sleep(LATENCY)
        prompt = params.messages[-1].content.text
        if params.tools:
            label = re.search(r"^Option ([A-Z]):$", prompt, re.MULTILINE)[1]
            return final_answer(params, {"option": label, "reasoning": "Convincing."})
        return REPLY


async def council_seconds(max_concurrency: int) -> tuple[float, int]:
    from council.core import GatewaySettings
    from council.server import create_server

    llm = SlowLLM()
    server = create_server(
        GatewaySettings(max_concurrency=max_concurrency), sampling_handler=llm
    )
    async with Client(server) as client:
        start = time.perf_counter()
        await client.call_tool("council_debate", {"topic": "Four-day week?"})
        return time.perf_counter() - start, llm.calls


async def summarizer_seconds(text: str) -> tuple[float, int, int]:
    from summarizer.core import GatewaySettings
    from summarizer.patterns.summarizer import Settings, split_into_chunks
    from summarizer.server import create_server

    gateway = GatewaySettings()
    llm = SlowLLM()
    server = create_server(gateway, sampling_handler=llm)
    async with Client(server) as client:
        start = time.perf_counter()
        await client.call_tool("summarize", {"text": text})
        seconds = time.perf_counter() - start
    # Sequential waves: each round's chunks in batches of max_concurrency, then one.
    chunk_chars = Settings().chunk_chars
    pieces, waves = split_into_chunks(text, chunk_chars), 1
    while len(pieces) > 1:
        waves += math.ceil(len(pieces) / gateway.max_concurrency)
        pieces = split_into_chunks("\n\n".join([REPLY] * len(pieces)), chunk_chars)
    return seconds, llm.calls, waves


OVERHEAD_SERVER = textwrap.dedent(
    """
    from fastmcp import Context
    from summarizer.core import LLM, GatewaySettings, Prompt
    from summarizer.server import create_server

    gateway = GatewaySettings()
    mcp = create_server(gateway)

    @mcp.tool
    async def bare(ctx: Context) -> str:
        return (await ctx.sample("Say hi.", max_tokens=16)).text

    @mcp.tool
    async def gateway_call(ctx: Context) -> str:
        return await LLM(ctx, gateway).complete(Prompt("Say hi."), max_tokens=16)

    mcp.run("stdio", show_banner=False)
    """
)


async def overhead_medians() -> tuple[float, float]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", OVERHEAD_SERVER],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    async with (
        stdio_client(params) as (read, write),
        ClientSession(
            read, write, sampling_callback=sampling_callback(lambda _r: "hi")
        ) as session,
    ):
        await session.initialize()
        medians = []
        for tool in ("bare", "gateway_call"):
            times = []
            for _ in range(OVERHEAD_CALLS):
                start = time.perf_counter()
                await session.call_tool(tool, {})
                times.append(time.perf_counter() - start)
            medians.append(statistics.median(times))
    return medians[0], medians[1]


async def main() -> None:
    parallel, calls = await council_seconds(max_concurrency=10)
    sequential, _ = await council_seconds(max_concurrency=1)
    text = "\n\n".join(
        f"Paragraph {n}. " + "The committee reviewed the figures again. " * 12
        for n in range(2_000)
    )
    summary_seconds, summary_calls, waves = await summarizer_seconds(text)
    bare, gateway = await overhead_medians()
    rows = [
        ("latency L", f"{LATENCY * 1000:.0f} ms"),
        ("council: calls", f"{calls}"),
        ("council: wall, concurrency 10", f"{parallel:.2f} s"),
        ("council: wall, concurrency 1", f"{sequential:.2f} s"),
        ("council: sequential / concurrent", f"{sequential / parallel:.1f}x"),
        ("council: wall / 3L floor", f"{parallel / (3 * LATENCY):.2f}"),
        ("summarizer: text", f"{len(text) / 1e6:.2f} MB"),
        ("summarizer: calls", f"{summary_calls}"),
        ("summarizer: wall", f"{summary_seconds:.2f} s"),
        ("summarizer: waves x L", f"{waves * LATENCY:.2f} s ({waves} waves)"),
        ("stdio: median tool call, bare ctx.sample", f"{bare * 1000:.2f} ms"),
        ("stdio: median tool call, gateway", f"{gateway * 1000:.2f} ms"),
        ("gateway overhead per call", f"{(gateway - bare) * 1000:+.2f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    asyncio.run(main())
