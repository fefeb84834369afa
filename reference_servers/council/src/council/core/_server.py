"""The FastMCP server every generated project runs."""

from __future__ import annotations

import logging
import secrets
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import fastmcp
import fastmcp.exceptions
import mcp.types
import platformdirs
import pydantic
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult
from mcp.server.request_state import RequestStateSecurity
from mcp.shared.exceptions import MCPDeprecationWarning
from opentelemetry import trace
from starlette.middleware import Middleware as ASGIMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from ._database import open_database
from ._errors import SamplingUnavailableError
from ._gateway import Route, route_of
from ._http import SessionBounds, SharedToken, StrictHost
from ._identity import IssuerTokens, OAuthResource, current_principal, principal_in_logs
from ._messages import describe_problem
from ._replay import RawAnswers, ReplayMiddleware
from ._secrets import keep_secret, redact, redact_logs
from ._settings import ConfigurationError, GatewaySettings, ServerSettings
from ._tracing import ToolCall, current_tool_call
from ._usage import Usage

if TYPE_CHECKING:
    # FastMCP's client half: needed here for the type only, and slow to import.
    from fastmcp.client.sampling import SamplingHandler

logger = logging.getLogger(__name__)


class SamplingServer(FastMCP):
    """FastMCP as this project serves it.

    - Both protocol eras: a 2025-11-25 session gets sampling requests pushed to it; a
      2026-07-28 request gets them by MRTR, the tool call replayed round by round
      (`_replay.py`), its state sealed with `MCP_REQUEST_STATE_KEY`.
    - `server_llm` is the server-side LLM the gateway may call (`MCP_SAMPLING_MODE`).
    - HTTP is guarded however it is served — the console script, `fastmcp run
      --transport http`, or an ASGI server given `http_app()`: strict `Host`/`Origin`
      checks (`MCP_HTTP_ALLOWED_HOSTS`), the bearer token (`MCP_HTTP_TOKEN`), bounded
      sessions, and no start beyond loopback without them (see `_http.py`).
    - Every tool call ends by `MCP_TOOL_DEADLINE`, with what it has in flight
      cancelled. Arguments that do not fit a tool's signature get a message naming
      each problem, never pydantic's dump.
    - Over HTTP, `GET /health` (the process answers) and `GET /ready` (every check a
      pattern added with `add_readiness_check` passes), without the bearer token: for
      a load balancer's health checks.
    - `serverInfo.version` is the project's version, not FastMCP's.
    - `fastmcp run` does not advertise FastMCP updates: a new major version could
      change what the server is written for.
    """

    def __init__(
        self,
        *args: Any,
        version: str,
        http: ServerSettings,
        gateway: GatewaySettings,
        server_llm: SamplingHandler[Any, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        fastmcp.settings.check_for_updates = "off"
        # Sampling is deprecated as of MCP 2026-07-28 (SEP-2577); this server uses it
        # on purpose, on both eras.
        warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
        redact_logs()
        key = http.request_state_key
        if key is not None:
            keep_secret(key.get_secret_value())
        if http.http_token is not None:
            keep_secret(http.http_token.get_secret_value())
        keep_secret(urlsplit(http.db_url or "").password)
        self.usage = _usage(http, gateway, server_llm, kwargs.get("name") or "")
        """The per-user limits of the server-side LLM, or None when it has none."""
        super().__init__(
            *args,
            version=version,
            middleware=[
                PlainArgumentErrors(),
                PerUser(self.usage, gateway),
                ToolDeadline(http.tool_deadline),
                ReplayMiddleware(gateway),
            ],
            request_state_security=RequestStateSecurity(
                # Without a shared key, a per-process one: every round of a modern
                # tool call must then reach this process.
                keys=[key.get_secret_value() if key else secrets.token_bytes(32)],
                # Each round's answers are due within MCP_SAMPLING_TIMEOUT (checked
                # in _replay.py, with a clear message); the whole call, within this.
                ttl=gateway.timeout * gateway.max_rounds,
                # The state names its principal inside (_replay.py), so that another
                # user's state is refused with a message saying so, not the SDK's
                # "Invalid or expired requestState".
                bind_principal=None,
            ),
            **kwargs,
        )
        # FastMCP has no hook before the SDK validates a request's parameters.
        self._mcp_server.middleware.insert(0, RawAnswers())
        self._http = http
        self.server_llm = server_llm
        """The server-side LLM, or None (see `MCP_SAMPLING_PROVIDER`)."""
        self._readiness: dict[str, Check] = {}
        if http.auth_issuer is not None and http.auth_audience is not None:
            self.auth = OAuthResource(
                IssuerTokens(
                    issuer=http.auth_issuer,
                    audience=http.auth_audience,
                    required_scopes=http.required_scopes or None,
                )
            )
        elif http.http_token is not None:
            self.auth = SharedToken(http.http_token.get_secret_value())
        if self.usage is not None:
            logger.info(
                "per-user limits are kept in %s (MCP_DB_URL)",
                self.usage.database.location,
            )
            self.add_readiness_check("usage database", self.usage.database.check)
        self.custom_route("/health", methods=["GET"])(_healthy)
        self.custom_route("/ready", methods=["GET"])(self._ready)

    def add_readiness_check(self, name: str, check: Check) -> None:
        """`GET /ready` answers 503 while `await check()` raises (an `OSError`, a
        `ValueError`): the replica should get no traffic until it passes."""
        self._readiness[name] = check

    async def _ready(self, _request: Request) -> JSONResponse:
        problems = {
            name: problem
            for name, check in self._readiness.items()
            if (problem := await _problem_of(check))
        }
        if problems:
            return JSONResponse({"ready": False, "problems": problems}, status_code=503)
        return JSONResponse({"ready": True, "checks": sorted(self._readiness)})

    def http_app(self, *args: Any, **kwargs: Any) -> Any:
        # Whatever the caller asked for: FastMCP's default lets a foreign Host reach
        # a server on 127.0.0.1 (DNS rebinding).
        kwargs["host_origin_protection"] = True
        kwargs["allowed_hosts"] = self._http.allowed_hosts
        kwargs["middleware"] = [
            ASGIMiddleware(StrictHost),
            ASGIMiddleware(
                SessionBounds,
                max_sessions=self._http.http_max_sessions,
                idle_timeout=self._http.http_session_idle_timeout,
            ),
            *(kwargs.get("middleware") or []),
        ]
        return super().http_app(*args, **kwargs)

    async def run_http_async(self, *args: Any, **kwargs: Any) -> None:
        host = kwargs.get("host") or fastmcp.settings.host  # FastMCP's own default
        if problem := self._http.open_server_problem(host):
            raise ConfigurationError(problem)
        await super().run_http_async(*args, **kwargs)


Check = Callable[[], Awaitable[None]]


async def _problem_of(check: Check) -> str | None:
    """What keeps a readiness check from passing (in 5 s), or None."""
    try:
        with anyio.fail_after(5):
            await check()
    except (OSError, ValueError, TimeoutError) as error:
        return redact(str(error) or type(error).__name__)
    return None


async def _healthy(_request: Request) -> JSONResponse:
    return JSONResponse({"healthy": True})


class PlainArgumentErrors(Middleware):
    """Arguments that do not fit the tool: one line per problem, without the input
    echoed back or pydantic's links."""

    async def on_call_tool(
        self,
        context: MiddlewareContext[mcp.types.CallToolRequestParams],
        call_next: CallNext[mcp.types.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        try:
            return await call_next(context)
        except fastmcp.exceptions.ValidationError as error:
            if not isinstance(error.__cause__, pydantic.ValidationError):
                raise
            raise ToolError(
                f"{context.message.name} was called with arguments that do not fit: "
                f"{describe_problem(error.__cause__)}."
            ) from None


class PerUser(Middleware):
    """Each tool call runs as its caller: their principal's digest on every log record
    and span of the call (`principal_in_logs`), and, when the server-side LLM serves
    it, no more of their calls at once than `MCP_MAX_CONCURRENT_CALLS`."""

    def __init__(self, usage: Usage | None, gateway: GatewaySettings) -> None:
        self._usage = usage
        self._gateway = gateway

    async def on_call_tool(
        self,
        context: MiddlewareContext[mcp.types.CallToolRequestParams],
        call_next: CallNext[mcp.types.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        principal = current_principal()
        token = principal_in_logs.set(principal.digest)
        try:
            if self._usage is None or not self._on_server_llm(context):
                return await call_next(context)
            async with self._usage.running(principal):
                return await call_next(context)
        finally:
            principal_in_logs.reset(token)

    def _on_server_llm(
        self, context: MiddlewareContext[mcp.types.CallToolRequestParams]
    ) -> bool:
        ctx = context.fastmcp_context
        try:
            return ctx is not None and route_of(ctx, self._gateway) is Route.SERVER
        except SamplingUnavailableError:
            return False


def _usage(
    http: ServerSettings,
    gateway: GatewaySettings,
    server_llm: object,
    name: str,
) -> Usage | None:
    """The per-user limits the settings ask for, or None."""
    limited = gateway.budget_tokens is not None or http.max_concurrent_calls is not None
    if server_llm is None or not limited:
        return None
    default = Path(platformdirs.user_data_dir(name or "mcp-server")) / "usage.db"
    return Usage(
        open_database(http.db_url or f"sqlite:///{default}", "MCP_DB_URL"),
        budget_tokens=gateway.budget_tokens,
        max_calls=http.max_concurrent_calls,
        call_deadline=http.tool_deadline,
    )


class ToolDeadline(Middleware):
    """Ends a tool call that runs past its deadline, cancelling what is in flight
    (its sampling requests included: the client is told to stop)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def on_call_tool(
        self,
        context: MiddlewareContext[mcp.types.CallToolRequestParams],
        call_next: CallNext[mcp.types.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        token = current_tool_call.set(await self._traced(context))
        try:
            with anyio.move_on_after(self.seconds):
                return await call_next(context)
        finally:
            current_tool_call.reset(token)
        raise ToolError(
            f"{context.message.name} did not finish within {self.seconds:g} s "
            "(MCP_TOOL_DEADLINE); what it had in flight was cancelled."
        )

    @staticmethod
    async def _traced(
        context: MiddlewareContext[mcp.types.CallToolRequestParams],
    ) -> ToolCall | None:
        """The call as its sampling spans name it, when it is being traced."""
        if not trace.get_current_span().is_recording():
            return None  # untraced: no lookup
        name = context.message.name
        server = context.fastmcp_context and context.fastmcp_context.fastmcp
        tool = await server.get_tool(name) if server else None
        return ToolCall.of(name, getattr(tool, "fn", None), principal_in_logs.get())
