"""Settings. Every setting has an environment variable, a default and a CLI flag.

The environment variable is the settings class's prefix plus the field name
(`GatewaySettings.timeout` is `MCP_SAMPLING_TIMEOUT`); the CLI flag is the same name
without the `MCP_` prefix (`--sampling-timeout`). Patterns declare their own settings
class in their module, named after the pattern (`SUMMARIZER_MAX_CHARS`).

    >>> GatewaySettings(max_concurrency=4).max_concurrency
    4
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """How the server is reached and how much it says about itself."""

    model_config = SettingsConfigDict(env_prefix="MCP_")

    transport: Literal["stdio", "http"] = Field(
        "stdio", description="`stdio`, or `http` for streamable HTTP."
    )
    host: str = Field("127.0.0.1", description="Address the HTTP transport binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP transport.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level; logs always go to stderr."
    )


class GatewaySettings(BaseSettings):
    """Bounds on the LLM gateway (`llm.py`)."""

    model_config = SettingsConfigDict(env_prefix="MCP_SAMPLING_")

    max_concurrency: int = Field(
        10,
        ge=1,
        description="Sampling requests one tool call may have in flight at once.",
    )
    timeout: float = Field(
        120.0, gt=0, description="Seconds to wait for one sampling request."
    )
    max_tokens: int = Field(
        1024,
        ge=1,
        description="`maxTokens` for requests whose caller does not set one.",
    )
    max_retries: int = Field(
        3,
        ge=0,
        description="Retries after an invalid structured answer (so 4 requests at most).",
    )
    max_iterations: int = Field(
        20,
        ge=1,
        description="Most sampling requests one agent loop may make (its ceiling).",
    )
    max_tool_calls: int = Field(
        40, ge=1, description="Most tool calls one agent loop may make."
    )
    tool_concurrency: int = Field(
        4, ge=1, description="Tool calls of one agent turn run at once."
    )
