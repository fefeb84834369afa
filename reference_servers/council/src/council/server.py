"""The server: a FastMCP app with every pattern in `patterns/` registered.

    mcp = create_server()                                   # configured from the environment
    mcp = create_server(sampling_handler=my_handler)        # with a server-side LLM

`fastmcp run` calls `create_server` too (see `fastmcp.json`), so it honours the same
environment variables as the `council` command.
"""

from __future__ import annotations

from fastmcp import FastMCP
from fastmcp.client.sampling import SamplingHandler

from council import patterns
from council.config import GatewaySettings

INSTRUCTIONS = (
    "A council of nine personas debates, votes and synthesises with the client\u0027s LLM."
    " The tools think with your LLM through MCP sampling; grant their sampling requests."
)


def create_server(
    gateway: GatewaySettings | None = None,
    *,
    sampling_handler: SamplingHandler | None = None,
) -> FastMCP:
    """Build the server.

    `gateway` defaults to the `MCP_SAMPLING_*` environment variables. A
    `sampling_handler` is the server-side LLM, used only when the client cannot sample.
    """
    gateway = gateway or GatewaySettings()
    mcp = FastMCP(
        name="council",
        instructions=INSTRUCTIONS,
        sampling_handler=sampling_handler,
    )
    for pattern in patterns.discover():
        pattern.register(mcp, gateway)
    return mcp
