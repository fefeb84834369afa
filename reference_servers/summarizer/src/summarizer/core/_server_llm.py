"""The server-side LLM: a provider the server calls itself, for clients that cannot sample.

It is configured by the `MCP_SAMPLING_PROVIDER`, `_MODEL`, `_API_KEY`, `_BASE_URL`,
`_MODE` and `_PROVIDER_RETRIES` variables (see `GatewaySettings`) and wraps FastMCP's
own sampling handlers, so requests and replies keep the MCP shape the gateway works
with. What it adds to them: the provider SDK comes from an optional extra and its
absence is a configuration error, and every failure becomes one `SamplingFailedError`
per call that names the provider and what to check, with the API key scrubbed from
anything the provider sent back. The SDK's own retries stay on (two by default, with
backoff, honouring the provider's `Retry-After`): hosted providers shed load with 429
and 5xx answers that a second try gets past, and `MCP_SAMPLING_TIMEOUT` bounds the
request, retries included. `MCP_SAMPLING_PROVIDER_RETRIES=0` fails at once, for a
proxy that retries by itself.

    handler = server_llm(GatewaySettings(provider="openai", model="llama3.2",
                                         base_url="http://127.0.0.1:11434/v1"))
    mcp = create_server(sampling_handler=handler)
"""

from __future__ import annotations

import contextvars
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from mcp.types import (
    CreateMessageRequestParams,
    SamplingMessage,
    TextContent,
    ToolUseContent,
)

from ._errors import SamplingFailedError
from ._secrets import keep_secret, redact, redact_any
from ._settings import GatewaySettings
from ._tracing import USAGE_KEY

logger = logging.getLogger(__name__)


class ServerLLMUnavailableError(ValueError):
    """The configured provider's SDK is not installed."""


def server_llm(settings: GatewaySettings) -> ServerLLM | None:
    """The server-side LLM the settings configure, or None when they configure none."""
    return ServerLLM(settings) if settings.provider is not None else None


class ServerLLM:
    """A FastMCP sampling handler that calls the configured provider.

    Its provider client lives as long as the server runs: `lifespan` opens it and
    closes it again (`create_server` installs it as the server's lifespan).
    """

    def __init__(self, settings: GatewaySettings) -> None:
        if settings.provider is None or settings.model is None:
            raise ValueError(
                "A server-side LLM needs MCP_SAMPLING_PROVIDER and MCP_SAMPLING_MODEL."
            )
        self.provider = settings.provider
        self.model = settings.model
        self._settings = settings
        self._secret = settings.api_key.get_secret_value() if settings.api_key else None
        keep_secret(self._secret)
        keep_secret(urlsplit(settings.base_url or "").password)
        self._sdk, self._handlers = _import_provider(self.provider)
        self._client: Any = None
        self._handler: Any = None

    @asynccontextmanager
    async def lifespan(self, _server: object) -> AsyncIterator[dict[str, Any]]:
        """Open the provider client while the server runs; close its connections after."""
        client_class, handler_class = _CLASSES[self.provider]
        # The SDKs refuse to start without a key; a custom endpoint may need none.
        self._client = getattr(self._sdk, client_class)(
            api_key=self._secret or "unused",
            base_url=self._settings.base_url,
            timeout=self._settings.timeout,
            max_retries=self._settings.provider_retries,
        )
        self._handler = getattr(self._handlers, handler_class)(
            default_model=self.model, client=self._client
        )
        _note_usage(self._client, self.provider)
        try:
            yield {}
        finally:
            self._handler = None
            await self._client.close()

    @property
    def endpoint(self) -> str:
        """Where requests go, without any credentials in the URL."""
        url = self._settings.base_url or (self._client and str(self._client.base_url))
        if not url:
            return "its hosted API"
        parts = urlsplit(url)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()

    def __repr__(self) -> str:
        return f"ServerLLM({self.provider}, {self.model!r}, {self.endpoint})"

    def __str__(self) -> str:
        return f"{self.provider} model {self.model!r} at {self.endpoint}"

    async def __call__(
        self,
        messages: list[SamplingMessage],
        params: CreateMessageRequestParams,
        context: Any,
    ) -> Any:
        if self._handler is None:
            raise SamplingFailedError(
                "The server-side LLM is used outside its lifespan."
            )
        try:
            _usage.set(None)
            reply = await self._handler(messages, params, context)
            # A provider may echo the key back, even in a successful reply.
            content = reply.content
            redacted = (
                [_redacted(b) for b in content]
                if isinstance(content, list)
                else _redacted(content)
            )
            meta = (
                {**(reply.meta or {}), USAGE_KEY: _usage.get()}
                if _usage.get()
                else reply.meta
            )
            return reply.model_copy(update={"content": redacted, "meta": meta})
        except self._sdk.APIStatusError as error:
            problem = f"answered HTTP {error.status_code}: {_detail(error)}"
            hint = _STATUS_HINTS.get(error.status_code, "")
        except self._sdk.APITimeoutError:
            problem = "did not answer in time"
            hint = "Raise MCP_SAMPLING_TIMEOUT, or check the endpoint's load."
        except self._sdk.APIConnectionError as error:
            problem = f"could not be reached ({error})"
            hint = "Check MCP_SAMPLING_BASE_URL and that the endpoint is up."
        # The handler's own conversions raise ValueError for replies it cannot read.
        except ValueError as error:
            problem = f"gave an unusable answer ({error})"
            hint = "Check that MCP_SAMPLING_MODEL supports this request (tool calls)."
        # Anything else still becomes one clear error, and still without the key.
        except Exception as error:  # noqa: BLE001
            problem = f"failed ({type(error).__name__}: {error})"
            hint = ""
        message = redact(f"The server-side LLM ({self}) {problem}. {hint}".strip())
        logger.warning("%s", message)
        raise SamplingFailedError(message)


_usage: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "provider_usage", default=None
)
"""The tokens the provider reported for the call in progress (for tracing)."""


def _note_usage(client: Any, provider: str) -> None:
    """Have the provider client's `create` note the usage each response reports:
    FastMCP's handlers keep only the MCP reply."""
    resource = client.chat.completions if provider == "openai" else client.messages
    create = resource.create

    async def create_noting_usage(*args: Any, **kwargs: Any) -> Any:
        response = await create(*args, **kwargs)
        usage = getattr(response, "usage", None)
        if usage is not None:
            _usage.set(
                {
                    "input_tokens": int(
                        getattr(usage, "prompt_tokens", None)
                        or getattr(usage, "input_tokens", None)
                        or 0
                    ),
                    "output_tokens": int(
                        getattr(usage, "completion_tokens", None)
                        or getattr(usage, "output_tokens", None)
                        or 0
                    ),
                }
            )
        return response

    resource.create = create_noting_usage


def _redacted(block: Any) -> Any:
    if isinstance(block, TextContent):
        return block.model_copy(update={"text": redact(block.text)})
    if isinstance(block, ToolUseContent):
        return block.model_copy(update={"input": redact_any(block.input)})
    return block


_CLASSES = {
    "openai": ("AsyncOpenAI", "OpenAISamplingHandler"),
    "anthropic": ("AsyncAnthropic", "AnthropicSamplingHandler"),
}
"""Each provider's SDK client and the FastMCP handler that speaks MCP over it."""

_STATUS_HINTS = {
    401: "Check MCP_SAMPLING_API_KEY.",
    403: "Check MCP_SAMPLING_API_KEY and the key's permissions.",
    404: "Check MCP_SAMPLING_MODEL and MCP_SAMPLING_BASE_URL.",
    429: "The provider is rate limiting; try again later.",
}


def _import_provider(provider: str) -> tuple[Any, Any]:
    try:
        sdk = importlib.import_module(provider)
        handlers = importlib.import_module(
            f"fastmcp.client.sampling.handlers.{provider}"
        )
    except ImportError:
        raise ServerLLMUnavailableError(
            f"MCP_SAMPLING_PROVIDER={provider} needs the `{provider}` extra: install "
            f"'summarizer[{provider}]' (in the project: "
            f"`uv run --extra {provider} summarizer`)."
        ) from None
    return sdk, handlers


def _detail(error: Any) -> str:
    """The provider's own error message, from either SDK's error body."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return str(error.message)
