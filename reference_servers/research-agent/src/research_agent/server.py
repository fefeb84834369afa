"""The server: a FastMCP app with every pattern in `patterns/` registered.

    mcp = create_server()                                # configured from the environment
    mcp = create_server(GatewaySettings(timeout=30))     # these settings, the rest from it
    mcp = create_server(sampling_handler=my_handler)     # a server-side LLM of your own
    mcp = create_server(patterns=[])                     # the machinery, no pattern

`fastmcp run` (and `fastmcp dev`, `fastmcp inspect`) build it with
`server_from_environment` (see `fastmcp.json`), so they honour the same environment
variables as the `research-agent` command, and report a bad one with its message.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fastmcp import FastMCP
from pydantic_settings import BaseSettings

from research_agent import __version__
from research_agent.core import (
    ConfigurationError,
    GatewaySettings,
    SamplingServer,
    ServerLLM,
    ServerSettings,
    configure_tracing,
    load_settings,
    server_llm,
)
from research_agent.patterns import discover

if TYPE_CHECKING:
    # FastMCP's client half, which this module needs only for the type: a quarter of
    # the server's start-up if imported.
    from fastmcp.client.sampling import SamplingHandler

NAME = "research-agent"
INSTRUCTIONS = (
    "Researches a local document corpus with the client's LLM, citing what it read."
    " The tools think with your LLM through MCP sampling; grant their sampling requests."
)


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of the server: its own, the gateway's, each pattern's."""
    classes: list[type[BaseSettings]] = [ServerSettings, GatewaySettings]
    return classes + [p.Settings for p in discover()]


def create_server(
    *settings: BaseSettings,
    sampling_handler: SamplingHandler[Any, Any] | None = None,
    patterns: Iterable[ModuleType] | None = None,
) -> FastMCP:
    """Build the server.

    Settings objects passed in are used as they are; every other class of
    `settings_classes()` is read from the environment. The server-side LLM is
    `sampling_handler` when given, else the one `MCP_SAMPLING_PROVIDER` configures;
    `MCP_SAMPLING_MODE` says whom it serves. It serves `patterns` (modules of
    `patterns/`), by default every one: a test serves only those it calls, as a
    pattern's tools are most of the time it takes to build a server. A configuration
    that cannot work raises `ConfigurationError` (a `ValueError`) naming every bad
    variable.
    """
    loaded = load_settings(settings_classes(), given=settings)
    gateway = loaded.of(GatewaySettings)
    sampling_handler = sampling_handler or server_llm(gateway)
    if sampling_handler is None and gateway.mode == "always":
        raise ConfigurationError(
            "MCP_SAMPLING_MODE=always needs a server-side LLM: set "
            "MCP_SAMPLING_PROVIDER and MCP_SAMPLING_MODEL."
        )
    mcp = SamplingServer(
        name=NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        http=loaded.of(ServerSettings),
        gateway=gateway,
        server_llm=sampling_handler,
        lifespan=(
            sampling_handler.lifespan
            if isinstance(sampling_handler, ServerLLM)
            else None
        ),
    )
    for pattern in discover() if patterns is None else patterns:
        pattern.register(mcp, gateway, loaded.of(pattern.Settings))
    return mcp


def server_from_environment() -> FastMCP:
    """The server the environment configures, for `fastmcp run` and its kin.

    A configuration that cannot work is reported as the `research-agent` command
    reports it, and ends the process with status 2 (no traceback).
    """
    try:
        configure_tracing()
        server = create_server()
    except ValueError as error:
        print(f"{NAME}: {ConfigurationError.of(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    freeze_start_up()
    return server


def freeze_start_up() -> None:
    """Before serving: what start-up loaded (FastMCP, pydantic's schemas, the tools)
    lives as long as the process, so it is frozen, and the collector's full passes no
    longer walk it (a modern call's rounds would wait on them)."""
    gc.collect()
    gc.freeze()
