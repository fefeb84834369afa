"""Traces: a span per sampling request, the child of the tool call's span."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import Connect
from fastmcp import Context, FastMCP
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from provider_standin import MODEL, USAGE

from research_agent.cli import main
from research_agent.core import (
    LLM,
    GatewaySettings,
    Prompt,
)
from research_agent.core.testing import (
    Retries,
    ScriptedLLM,
    call,
    final,
    text,
)

EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The spans this test ends; the SDK is set up once per process."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    EXPORTER.clear()
    return EXPORTER


def add_tools(server: FastMCP, gateway: GatewaySettings) -> None:
    async def ask_twice(question: str, ctx: Context) -> str:
        """Two requests, the second after the first."""
        llm = LLM(ctx, gateway)
        first = await llm.complete(Prompt("Answer.", question=question))
        return await llm.complete(Prompt("Check.", answer=first))

    # As if a pattern named `notes` defined it.
    ask_twice.__module__ = "research_agent.patterns.notes.tools"
    server.tool(ask_twice)

    @server.tool
    async def look_up(ctx: Context) -> dict:
        """An agent that calls one tool."""

        def lookup(key: str) -> str:
            """Look up a note."""
            return f"note {key}"

        done = await LLM(ctx, gateway).run_agent(
            Prompt("Look it up."), tools=[lookup], result_type=dict
        )
        return done.result


def named(finished: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


async def test_each_sampling_request_is_a_span_under_the_tool_call(
    connect: Connect,
    scripted_llm: ScriptedLLM,
    spans: InMemorySpanExporter,
    era: str,
) -> None:
    scripted_llm.expect(text("Four."), text("Right."))
    # One span per answer: no round sent twice.
    async with connect(
        "tools", setup=add_tools, retries=Retries(last_round=False)
    ) as client:
        await client.call_tool("ask_twice", {"question": "Two and two?"})
    finished = spans.get_finished_spans()
    sampling = named(finished, "sampling")
    tool_calls = [s for s in finished if "ask_twice" in s.name]
    assert len(sampling) == 2  # one per request, however many rounds (modern)
    assert {s.parent.span_id for s in sampling} <= {
        t.context.span_id for t in tool_calls
    }
    assert [s.attributes["mcp.sampling.attempt"] for s in sampling] == [1, 2]
    for span in sampling:
        assert span.attributes["mcp.sampling.route"] == "CLIENT_WITH_TOOLS"
        assert span.attributes["mcp.protocol.era"] == era
        assert span.attributes["mcp.tool.name"] == "ask_twice"
        assert span.attributes["mcp.pattern"] == "notes"
        assert span.attributes["mcp.sampling.request_bytes"] > 0
        assert span.attributes["mcp.sampling.response_bytes"] > 0
        assert span.attributes["gen_ai.response.model"] == "scripted"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_the_server_side_llm_reports_its_model_and_token_usage(
    connect: Connect,
    scripted_llm: ScriptedLLM,
    spans: InMemorySpanExporter,
    provider: str,
) -> None:
    scripted_llm.expect(text("Four."), text("Right."))
    async with connect("none", provider=provider, setup=add_tools) as client:
        await client.call_tool("ask_twice", {"question": "Two and two?"})
    (first, _second) = named(spans.get_finished_spans(), "sampling")
    assert first.attributes["mcp.sampling.route"] == "SERVER"
    assert first.attributes["gen_ai.response.model"] == MODEL
    assert first.attributes["gen_ai.usage.input_tokens"] == USAGE["input_tokens"]
    assert first.attributes["gen_ai.usage.output_tokens"] == USAGE["output_tokens"]


async def test_an_agents_tool_runs_are_spans_too(
    connect: Connect, scripted_llm: ScriptedLLM, spans: InMemorySpanExporter
) -> None:
    scripted_llm.expect(call("lookup", {"key": "a"}), final({"found": "note a"}))
    # One span per answer: no round sent twice.
    async with connect(
        "tools", setup=add_tools, retries=Retries(last_round=False)
    ) as client:
        result = await client.call_tool("look_up", {})
    assert result.data == {"found": "note a"}
    finished = spans.get_finished_spans()
    (tool,) = named(finished, "agent tool lookup")
    assert len(named(finished, "sampling")) == 2
    assert tool.parent is not None


def test_an_otlp_endpoint_without_the_otel_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "environ", os.environ.copy())
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    # None in sys.modules makes the import fail, as it does without the extra.
    monkeypatch.setitem(sys.modules, OTLP_EXPORTER, None)
    assert main([]) == 2
    assert "[otel]" in capsys.readouterr().err


OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"

TRACED_RUN = """
import asyncio

from fastmcp import Client, Context

from research_agent.core import LLM, GatewaySettings, Prompt, configure_tracing
from research_agent.core.testing import ScriptedLLM
from research_agent.server import create_server

configure_tracing()
server = create_server(GatewaySettings())


@server.tool
async def ask(question: str, ctx: Context) -> str:
    return await LLM(ctx, GatewaySettings()).complete(Prompt("Answer.", question=question))


async def run() -> None:
    async with Client(server, sampling_handler=ScriptedLLM("Forty-two.")) as client:
        await client.call_tool("ask", {"question": "Six times seven?"})


asyncio.run(run())
"""


@contextmanager
def otlp_collector() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback OTLP/HTTP endpoint: its URL and the trace exports it received."""
    received: list[bytes] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                received.append(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Collector) as collector:
        thread = threading.Thread(target=collector.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{collector.server_address[1]}", received
        finally:
            collector.shutdown()


@pytest.mark.process
def test_configure_tracing_exports_the_spans_over_otlp() -> None:
    with otlp_collector() as (endpoint, received):
        subprocess.run(
            [sys.executable, "-c", TRACED_RUN],
            env={
                **os.environ,
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_SERVICE_NAME": "traced-run",
            },
            check=True,
            timeout=60,
        )
    exported = [ExportTraceServiceRequest.FromString(body) for body in received]
    resource_spans = [rs for export in exported for rs in export.resource_spans]
    services = {
        attribute.value.string_value
        for rs in resource_spans
        for attribute in rs.resource.attributes
        if attribute.key == "service.name"
    }
    assert services == {"traced-run"}
    spans = [
        span
        for rs in resource_spans
        for scope in rs.scope_spans
        for span in scope.spans
    ]
    (sampling,) = [span for span in spans if span.name == "sampling"]
    attributes = {a.key: a.value for a in sampling.attributes}
    assert attributes["mcp.tool.name"].string_value == "ask"
    assert attributes["mcp.pattern"].string_value == ""  # not defined in patterns/
    assert attributes["gen_ai.response.model"].string_value == "scripted"
    # The in-process client traces the call too: the parent is the server's span.
    (parent,) = [span for span in spans if span.span_id == sampling.parent_span_id]
    assert parent.name == "tools/call ask"
    assert parent.kind == parent.SPAN_KIND_SERVER
