"""Traces of model traffic: an OpenTelemetry span per sampling request and per agent tool.

Each span is a child of FastMCP's span for the tool call (`tools/call <name>`). A
sampling span carries the route, the protocol era, the attempt (the request's number in
the tool call), the tool, its pattern and a hash of its caller, the request's and the reply's sizes, the stop reason, the
model named in the reply and, when the server-side provider reports it, the tokens
used. Only the OpenTelemetry API is used (FastMCP depends on it): without an SDK the
spans cost next to nothing. With the `otel` extra, `configure_tracing()` exports them
over OTLP as the standard `OTEL_*` variables say (`OTEL_EXPORTER_OTLP_ENDPOINT`, ...).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mcp.types import CreateMessageRequestParams
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from ._settings import ConfigurationError

tracer = trace.get_tracer("council.gateway")


@dataclass(frozen=True)
class ToolCall:
    """The tool call a request serves, as its spans name it."""

    tool: str
    pattern: str
    """The pattern (`patterns/` module) that defines the tool; empty for other tools."""
    principal: str
    """The digest of whoever called it (`Principal.digest`): it names nobody."""

    @classmethod
    def of(cls, tool: str, function: object, principal: str) -> ToolCall:
        """The call of `tool`, whose code is `function`, by `principal`.

        >>> def debate() -> None: ...
        >>> debate.__module__ = "council.patterns.council.tools"
        >>> ToolCall.of("council_debate", debate, "6edbc1f9c9a9b7e5")
        ToolCall(tool='council_debate', pattern='council', principal='6edbc1f9c9a9b7e5')
        """
        module = getattr(function, "__module__", None) or ""
        _, found, inside = module.partition(".patterns.")
        return cls(tool, inside.split(".")[0] if found else "", principal)


current_tool_call: contextvars.ContextVar[ToolCall | None] = contextvars.ContextVar(
    "current_tool_call", default=None
)
"""The tool call running here (set by the server for every traced tool call)."""

USAGE_KEY = "usage"
"""Where the server-side LLM puts the tokens its provider reported, in a reply's meta."""


@contextmanager
def sampling_span(
    *,
    route: str,
    era: str,
    attempt: int,
    request: CreateMessageRequestParams,
) -> Iterator[Span]:
    """The span of one sampling request; `record_reply` completes it."""
    with tracer.start_as_current_span(
        "sampling",
        attributes={
            "mcp.sampling.route": route,
            "mcp.protocol.era": era,
            "mcp.sampling.attempt": attempt,
            "gen_ai.operation.name": "chat",
            "gen_ai.request.max_tokens": request.max_tokens,
            "mcp.sampling.tools": len(request.tools or []),
        },
    ) as span:
        if span.is_recording():
            span.set_attribute("mcp.sampling.request_bytes", _size(request))
            call = current_tool_call.get()
            if call is not None:
                span.set_attribute("mcp.tool.name", call.tool)
                span.set_attribute("mcp.pattern", call.pattern)
                span.set_attribute("mcp.principal", call.principal)
        try:
            yield span
        except Exception as error:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise


def record_reply(span: Span, reply: Any) -> None:
    """What came back: its size, stop reason, model and (if reported) token usage."""
    if not span.is_recording():
        return
    span.set_attribute("mcp.sampling.response_bytes", _size(reply))
    span.set_attribute("gen_ai.response.model", reply.model or "")
    if reply.stop_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [reply.stop_reason])
    usage = (reply.meta or {}).get(USAGE_KEY) or {}
    for name in ("input_tokens", "output_tokens"):
        if isinstance(usage.get(name), int):
            span.set_attribute(f"gen_ai.usage.{name}", usage[name])


@contextmanager
def tool_span(name: str) -> Iterator[Span]:
    """The span of one agent tool run (the model asked for it)."""
    with tracer.start_as_current_span(
        f"agent tool {name}", attributes={"mcp.agent.tool": name}
    ) as span:
        yield span


def configure_tracing() -> None:
    """Export spans over OTLP when an `OTEL_EXPORTER_OTLP_*ENDPOINT` is set.

    Needs the `otel` extra (the OpenTelemetry SDK and its OTLP exporter); the SDK reads
    the other standard variables itself (`OTEL_SERVICE_NAME`, headers, ...).
    """
    wanted = any(
        os.environ.get(name)
        for name in (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        )
    )
    if not wanted or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigurationError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, but the OpenTelemetry SDK is not "
            "installed: install 'council[otel]' (in the project: "
            "`uv run --extra otel council`)."
        ) from None
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def _size(model: Any) -> int:
    return len(model.model_dump_json(by_alias=True, exclude_none=True))
