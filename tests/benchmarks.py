"""Benchmarks for `nox -s bench`: figures, not pass/fail.

Run inside an environment where the `council` and `summarizer` reference servers are
installed. A scripted LLM answers every request after a fixed latency L; it is installed
as the server-side LLM, which the server calls concurrently (FastMCP's test client would
answer one request at a time and hide all concurrency).

1. council debate (19 calls, 3 rounds) at the default concurrency vs concurrency 1;
2. summarizer on ~1 MB of text vs its number of sequential request waves times L;
3. per-call overhead of the gateway vs a bare `ctx.sample`, over stdio (median);
4. hostile input, against the bounds: a summarizer whose partials are only 40
   characters shorter than their parts (a 239 kB document), a council whose members
   answer 10 MB opinions, and 10,000 abandoned HTTP sessions before a new client.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import re
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from fastmcp import Client
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import SamplingCapability, SamplingToolsCapability
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


async def modern_seconds(server_name: str, tool: str, arguments: dict) -> tuple:
    """The same tool call on the modern era: the client's LLM (SlowLLM) answers each
    round's requests concurrently. Wall time, requests, and the rounds with each
    round's requests and requestState size."""
    module = __import__(f"{server_name}.server", fromlist=["create_server"])
    testing = __import__(f"{server_name}.core.testing", fromlist=["Rounds"])
    server = module.create_server()
    rounds = testing.Rounds.watching(server)
    llm = SlowLLM()
    async with Client(
        server,
        mode="2026-07-28",
        sampling_handler=llm,
        sampling_capabilities=SamplingCapability(tools=SamplingToolsCapability()),
        input_required_max_rounds=50,
    ) as client:
        start = time.perf_counter()
        await client.call_tool(tool, arguments)
        return time.perf_counter() - start, llm.calls, rounds.asked, rounds.states


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
    from mcp.types import SamplingMessage, TextContent
    from summarizer.core import LLM, GatewaySettings, Prompt
    from summarizer.server import create_server

    gateway = GatewaySettings()
    mcp = create_server(gateway)
    HI = [SamplingMessage(role="user", content=TextContent(type="text", text="Hi."))]

    @mcp.tool
    async def bare(ctx: Context) -> str:
        reply = await ctx.session.create_message(
            HI, max_tokens=16, related_request_id=ctx.request_id
        )
        return reply.content.text

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


async def shrinking_by_40_characters() -> tuple[int, float, str]:
    """Calls and wall time until the summarizer stops a model that barely shrinks."""
    from summarizer.core import GatewaySettings
    from summarizer.server import create_server

    calls = 0

    async def barely_shorter(messages, params, context) -> str:
        nonlocal calls
        calls += 1
        document = params.messages[-1].content.text.split("\n")[3:-1]
        return "\n".join(document)[:-40]

    text = "\n\n".join(
        f"Paragraph {n}. " + "The committee reviewed the figures again. " * 12
        for n in range(460)
    )
    server = create_server(GatewaySettings(), sampling_handler=barely_shorter)
    start = time.perf_counter()
    async with Client(server) as client:
        await client.call_tool("summarize", {"text": text}, raise_on_error=False)
    return calls, time.perf_counter() - start, f"{len(text) / 1000:.0f} kB"


async def ten_megabyte_opinions() -> tuple[int, float, float, float, int]:
    """Calls, wall, MB sent to the client's LLM, peak RSS in MB, debates stored."""
    import resource
    import sqlite3

    from council.server import create_server

    calls, sent = 0, 0

    async def verbose(messages, params, context) -> str:
        nonlocal calls, sent
        calls += 1
        sent += len(params.model_dump_json())
        return "word " * 2_000_000  # 10 MB

    with tempfile.TemporaryDirectory() as scratch:
        database = f"{scratch}/council.db"
        os.environ["COUNCIL_DB_PATH"] = database
        start = time.perf_counter()
        async with Client(create_server(), sampling_handler=verbose) as client:
            await client.call_tool(
                "council_debate", {"topic": "Four-day week?"}, raise_on_error=False
            )
        seconds = time.perf_counter() - start
        with sqlite3.connect(database) as db:
            tables = db.execute("select name from sqlite_master").fetchall()
            stored = (
                db.execute("select count(*) from debates").fetchone()[0]
                if tables
                else 0
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return calls, seconds, sent / 1e6, peak, stored


def session_flood(sessions: int = 10_000) -> tuple[float, float, float, bool]:
    """Seconds to open `sessions` abandoned HTTP sessions, the server's RSS growth in
    MB, seconds for a new client to list tools afterwards, and whether it could."""
    import socket
    import subprocess

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "summarizer"),
            "--transport", "http", "--port", str(port), "--log-level", "WARNING",
        ],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/mcp"
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "flood", "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}

    def rss() -> float:
        status = Path(f"/proc/{server.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024

    try:
        with httpx.Client(timeout=10) as http:
            for _ in range(300):
                try:
                    http.post(url, json=initialize, headers=headers)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            before = rss()
            start = time.perf_counter()
            for _ in range(sessions):
                http.post(url, json=initialize, headers=headers)
            flood = time.perf_counter() - start
            grown = rss() - before

        async def newcomer() -> bool:
            async with Client(url) as client:
                return bool(await client.list_tools())

        start = time.perf_counter()
        admitted = asyncio.run(newcomer())
        return flood, grown, time.perf_counter() - start, admitted
    finally:
        server.terminate()
        server.wait(timeout=10)


async def main() -> None:
    # As a server's start-up does: the servers loaded, then frozen.
    importlib.import_module("council.server")
    importlib.import_module("summarizer.server").freeze_start_up()
    parallel, calls = await council_seconds(max_concurrency=10)
    sequential, _ = await council_seconds(max_concurrency=1)
    text = "\n\n".join(
        f"Paragraph {n}. " + "The committee reviewed the figures again. " * 12
        for n in range(2_000)
    )
    summary_seconds, summary_calls, waves = await summarizer_seconds(text)
    bare, gateway = await overhead_medians()
    (
        council_modern,
        council_calls,
        council_rounds,
        council_states,
    ) = await modern_seconds("council", "council_debate", {"topic": "Four-day week?"})
    summary_modern, summary_modern_calls, summary_rounds, _ = await modern_seconds(
        "summarizer", "summarize", {"text": text}
    )
    shrink_calls, shrink_seconds, shrink_size = await shrinking_by_40_characters()
    (
        opinion_calls,
        opinion_seconds,
        opinion_mb,
        peak_mb,
        stored,
    ) = await ten_megabyte_opinions()
    flood, grown, newcomer, admitted = await asyncio.to_thread(session_flood)
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
        ("modern: council wall", f"{council_modern:.2f} s ({council_calls} calls)"),
        ("modern: council wall / 3L floor", f"{council_modern / (3 * LATENCY):.2f}"),
        ("modern: council tools/call", f"{len(council_rounds)}"),
        ("modern: council requests per round", " · ".join(map(str, council_rounds))),
        (
            "modern: council requestState per round",
            " · ".join(f"{n / 1000:.1f} kB" for n in council_states),
        ),
        (
            "modern: summarizer 1 MB wall",
            f"{summary_modern:.2f} s ({summary_modern_calls} calls)",
        ),
        ("modern: summarizer 1 MB tools/call", f"{len(summary_rounds)}"),
        (
            "modern / legacy: summarizer 1 MB wall",
            f"{summary_modern / summary_seconds:.2f} (goal: at most 1.3)",
        ),
        ("stdio: median tool call, bare create_message", f"{bare * 1000:.2f} ms"),
        ("stdio: median tool call, gateway", f"{gateway * 1000:.2f} ms"),
        ("gateway overhead per call", f"{(gateway - bare) * 1000:+.2f} ms"),
        (
            f"hostile: partials 40 chars shorter, {shrink_size}: calls",
            f"{shrink_calls}",
        ),
        ("hostile: partials 40 chars shorter: wall", f"{shrink_seconds:.2f} s"),
        ("hostile: nine 10 MB opinions: calls", f"{opinion_calls}"),
        ("hostile: nine 10 MB opinions: wall", f"{opinion_seconds:.2f} s"),
        ("hostile: nine 10 MB opinions: sent to the LLM", f"{opinion_mb:.2f} MB"),
        ("hostile: nine 10 MB opinions: peak RSS", f"{peak_mb:.0f} MB"),
        ("hostile: nine 10 MB opinions: debates stored", f"{stored}"),
        ("hostile: 10,000 abandoned HTTP sessions: flood", f"{flood:.1f} s"),
        ("hostile: 10,000 abandoned HTTP sessions: RSS growth", f"{grown:+.0f} MB"),
        (
            "hostile: then a new client lists tools",
            f"{newcomer:.2f} s" if admitted else "refused",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    # The servers keep their databases in the user's data folder by default: give
    # them a scratch one, so a run neither reads nor leaves anything there.
    with tempfile.TemporaryDirectory(prefix="bench-home-") as home:
        os.environ["XDG_DATA_HOME"] = f"{home}/data"
        os.environ["XDG_CACHE_HOME"] = f"{home}/cache"
        asyncio.run(main())
