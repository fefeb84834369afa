"""The server: a FastMCP app with every pattern in `patterns/` registered.

    mcp = create_server()                               # configured from the environment
    mcp = create_server(sampling_handler=my_handler)    # with a handler of your own

`fastmcp run` calls `create_server` too (see `fastmcp.json`), so it honours the same
environment variables as the `research-agent` command.
"""

from __future__ import annotations

from fastmcp import FastMCP
from fastmcp.client.sampling import SamplingHandler

from research_agent import patterns
from research_agent.config import GatewaySettings
from research_agent.server_llm import ServerLLM, server_llm

INSTRUCTIONS = (
    "Researches a local document corpus with the client\u0027s LLM, citing what it read."
    " The tools think with your LLM through MCP sampling; grant their sampling requests."
)


def create_server(
    gateway: GatewaySettings | None = None,
    *,
    sampling_handler: SamplingHandler | None = None,
) -> FastMCP:
    """Build the server.

    `gateway` defaults to the `MCP_SAMPLING_*` environment variables. The server-side
    LLM is `sampling_handler` when given, else the one those variables configure (see
    `server_llm.py`); `MCP_SAMPLING_MODE` says whom it serves. Raises `ValueError` for
    a configuration that cannot work.
    """
    gateway = gateway or GatewaySettings()
    sampling_handler = sampling_handler or server_llm(gateway)
    if sampling_handler is None and gateway.mode == "always":
        raise ValueError(
            "MCP_SAMPLING_MODE=always needs a server-side LLM: set "
            "MCP_SAMPLING_PROVIDER and MCP_SAMPLING_MODEL."
        )
    mcp = FastMCP(
        name="research-agent",
        instructions=INSTRUCTIONS,
        sampling_handler=sampling_handler,
        sampling_handler_behavior=gateway.mode,
        lifespan=(
            sampling_handler.lifespan
            if isinstance(sampling_handler, ServerLLM)
            else None
        ),
    )
    for pattern in patterns.discover():
        pattern.register(mcp, gateway)
    return mcp
