"""The FastMCP server every generated project runs."""

from __future__ import annotations

from typing import Any

import fastmcp
from fastmcp import FastMCP

from ._http import SharedToken
from ._settings import ConfigurationError, ServerSettings


class SamplingServer(FastMCP):
    """FastMCP as this project serves it.

    - HTTP is guarded however it is served — the console script, `fastmcp run
      --transport http`, or an ASGI server given `http_app()`: strict `Host`/`Origin`
      checks (`MCP_HTTP_ALLOWED_HOSTS`), the bearer token (`MCP_HTTP_TOKEN`), and no
      start beyond loopback without them (see `_http.py`).
    - `serverInfo.version` is the project's version, not FastMCP's.
    - `fastmcp run` does not advertise FastMCP updates: following that advice would
      move the server past the FastMCP major version it is written for.
    """

    def __init__(
        self, *args: Any, version: str, http: ServerSettings, **kwargs: Any
    ) -> None:
        fastmcp.settings.check_for_updates = "off"
        super().__init__(*args, version=version, **kwargs)
        self._http = http
        if http.http_token is not None:
            self.auth = SharedToken(http.http_token.get_secret_value())

    def http_app(self, *args: Any, **kwargs: Any) -> Any:
        # Whatever the caller asked for: FastMCP's default lets a foreign Host reach
        # a server on 127.0.0.1 (DNS rebinding).
        kwargs["host_origin_protection"] = True
        kwargs["allowed_hosts"] = self._http.allowed_hosts
        return super().http_app(*args, **kwargs)

    async def run_http_async(self, *args: Any, **kwargs: Any) -> None:
        host = kwargs.get("host") or fastmcp.settings.host  # FastMCP's own default
        if problem := self._http.open_server_problem(host):
            raise ConfigurationError(problem)
        await super().run_http_async(*args, **kwargs)
