"""Settings. Every setting has an environment variable, a default and a CLI flag.

The environment variable is the settings class's prefix plus the field name
(`GatewaySettings.timeout` is `MCP_SAMPLING_TIMEOUT`); the CLI flag is the same name
without the `MCP_` prefix (`--sampling-timeout`). Patterns declare their own settings
class in their module, named after the pattern (`SUMMARIZER_MAX_CHARS`).
`load_settings` reads them all and reports every problem at once, naming each variable
and flag: the console script and `fastmcp run` print the same message.

    >>> GatewaySettings(max_concurrency=4).max_concurrency
    4
"""

from __future__ import annotations

import ipaddress
import os
import typing
from collections.abc import Iterable, Sequence
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

Provider = Literal["openai", "anthropic"]

PROVIDER_KEY_VARIABLES: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
}
"""The variable each provider's own SDK reads its key from; the fallback here too."""

HOSTED_ENDPOINTS = {"api.openai.com", "api.anthropic.com"}
"""Hosts that always need a key; a custom endpoint (Ollama, vLLM, ...) may not."""


class ServerSettings(BaseSettings):
    """How the server is reached, how long a tool call may take, what it logs."""

    model_config = SettingsConfigDict(env_prefix="MCP_")

    transport: Literal["stdio", "http"] = Field(
        "stdio", description="`stdio`, or `http` for streamable HTTP."
    )
    host: str = Field("127.0.0.1", description="Address the HTTP transport binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP transport.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level, in any case; logs always go to stderr."
    )
    tool_deadline: float = Field(
        600.0,
        gt=0,
        description="Seconds one tool call may take in all; then it ends with an "
        "error and what it has in flight is cancelled.",
    )
    http_allowed_hosts: str | None = Field(
        None,
        description="Comma-separated `Host` names (`host` or `host:port`, `*` "
        "wildcards) accepted besides loopback; any other `Host` is refused.",
    )
    http_token: SecretStr | None = Field(
        None,
        description="Bearer token HTTP clients must send "
        "(`Authorization: Bearer ...`). Environment only, never a flag.",
    )
    http_max_sessions: int = Field(
        1000,
        ge=1,
        description="Most HTTP sessions at once; when all are taken, the least "
        "recently used idle one makes room for a new client.",
    )
    http_session_idle_timeout: float = Field(
        900.0,
        gt=0,
        description="Seconds an HTTP session may stay idle before it is ended.",
    )
    request_state_key: SecretStr | None = Field(
        None,
        description="Key (32 characters or more) that seals a modern tool call's "
        "state between rounds; give every replica the same one. By default a key of "
        "this process alone. Environment only, never a flag.",
    )
    http_allow_unauthenticated: bool = Field(
        False,
        description="Serve HTTP beyond loopback without `MCP_HTTP_TOKEN` or "
        "`MCP_AUTH_ISSUER` (when something in front of the server authenticates).",
    )
    auth_issuer: str | None = Field(
        None,
        description="OAuth 2.1 / OpenID issuer URL: HTTP then requires its access "
        "tokens (JWTs, checked against its published keys) instead of "
        "`MCP_HTTP_TOKEN`, and each token's subject is a user of its own.",
    )
    auth_audience: str | None = Field(
        None,
        description="This server's resource URL, its MCP endpoint as clients reach "
        "it (`https://mcp.example.com/mcp`): tokens must be issued for it (their "
        "`aud`). Needed with `MCP_AUTH_ISSUER`.",
    )
    auth_required_scopes: str | None = Field(
        None,
        description="Scopes every access token must hold, separated by spaces or "
        "commas (`mcp:tools`); none by default.",
    )
    max_concurrent_calls: int | None = Field(
        None,
        ge=1,
        description="Tool calls one user may have running at once on the server-side "
        "LLM, across every replica sharing `MCP_DB_URL`; unlimited by default.",
    )
    db_url: str | None = Field(
        None,
        description="Database of the per-user limits (`MCP_SAMPLING_BUDGET_TOKENS`, "
        "`MCP_MAX_CONCURRENT_CALLS`): `sqlite:///PATH` (by default a file in the "
        "user's data folder) or `postgresql://...` to share it between replicas.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @field_validator("request_state_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().encode()) < 32:
            raise ValueError(
                "must be at least 32 bytes long: use `openssl rand -hex 32`"
            )
        return key

    @field_validator("http_token")
    @classmethod
    def _token_not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError(
                "is empty, so every request would be refused: give a token, or unset "
                "the variable"
            )
        return token

    @field_validator("auth_issuer", "auth_audience")
    @classmethod
    def _web_address(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError("must be an https:// URL")
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                raise ValueError(
                    "must be https:// (plain http:// only on loopback, for tests)"
                )
        return url

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> ServerSettings:
        if self.auth_issuer and self.http_token is not None:
            raise _configuration_error(
                "MCP_AUTH_ISSUER and MCP_HTTP_TOKEN are two ways to authenticate: set "
                "one of them."
            )
        if self.auth_issuer and not self.auth_audience:
            raise _configuration_error(
                "MCP_AUTH_ISSUER needs MCP_AUTH_AUDIENCE, this server's MCP endpoint as "
                "clients reach it (https://mcp.example.com/mcp): tokens are issued for it."
            )
        if self.auth_audience and not self.auth_issuer:
            raise _configuration_error(
                "MCP_AUTH_AUDIENCE is only used with MCP_AUTH_ISSUER: set the issuer too."
            )
        return self

    @property
    def required_scopes(self) -> list[str]:
        """`MCP_AUTH_REQUIRED_SCOPES` as a list."""
        return (self.auth_required_scopes or "").replace(",", " ").split()

    @property
    def allowed_hosts(self) -> list[str]:
        """`MCP_HTTP_ALLOWED_HOSTS` as a list."""
        names = (self.http_allowed_hosts or "").split(",")
        return [name.strip() for name in names if name.strip()]

    def open_server_problem(self, host: str) -> str | None:
        """Why serving HTTP on `host` with these settings would be unsafe, or None."""
        if is_loopback(host):
            return None
        authenticated = self.http_token is not None or self.auth_issuer is not None
        if not authenticated and not self.http_allow_unauthenticated:
            return (
                f"HTTP on {host} (MCP_HOST) is reachable beyond this machine, so anyone "
                "who reaches it could use its tools (and a server-side LLM's key): set "
                "MCP_HTTP_TOKEN or MCP_AUTH_ISSUER, or "
                "MCP_HTTP_ALLOW_UNAUTHENTICATED=true when a proxy in front of it "
                "authenticates."
            )
        if not self.allowed_hosts:
            return (
                f"HTTP on {host} (MCP_HOST) is reachable beyond this machine: set "
                "MCP_HTTP_ALLOWED_HOSTS to the names clients reach it by (requests "
                "with any other Host header are refused, against DNS rebinding)."
            )
        return None

    @model_validator(mode="after")
    def _no_open_http_server(self) -> ServerSettings:
        if self.transport == "http" and (
            problem := self.open_server_problem(self.host)
        ):
            raise _configuration_error(problem)
        return self


class GatewaySettings(BaseSettings):
    """The LLM gateway: its bounds, and the server-side LLM."""

    # An empty variable is an unset one: Claude Desktop's bundle form (manifest.json)
    # passes each optional field left blank as "", not a provider or URL to refuse.
    # Not so for ServerSettings: an empty MCP_HTTP_TOKEN must stay an error.
    model_config = SettingsConfigDict(env_prefix="MCP_SAMPLING_", env_ignore_empty=True)

    max_concurrency: int = Field(
        10,
        ge=1,
        description="Sampling requests one tool call may have in flight at once.",
    )
    timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds to wait for one sampling request (on the modern era: "
        "for a round's answers).",
    )
    max_tokens: int = Field(
        1024,
        ge=1,
        description="`maxTokens` for requests whose caller does not set one.",
    )
    chars_per_token: int = Field(
        8,
        ge=1,
        description="Characters a token may stand for: a reply longer than "
        "`maxTokens` times this is refused as a bad reply.",
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
    max_rounds: int = Field(
        25,
        ge=1,
        description="Most rounds (`tools/call`) one modern tool call may take.",
    )
    max_state_bytes: int = Field(
        1_000_000,
        ge=1000,
        description="Largest state a modern tool call may carry between rounds.",
    )
    max_tool_calls: int = Field(
        40, ge=1, description="Most tool calls one agent loop may make."
    )
    tool_concurrency: int = Field(
        4, ge=1, description="Tool calls of one agent turn run at once."
    )
    provider: Provider | None = Field(
        None,
        description="Server-side LLM: `openai` (any OpenAI-compatible endpoint) "
        "or `anthropic`.",
    )
    model: str | None = Field(None, description="The server-side LLM's model.")
    api_key: SecretStr | None = Field(
        None,
        description="The server-side LLM's API key; defaults to `OPENAI_API_KEY` or "
        "`ANTHROPIC_API_KEY`. Environment only, never a flag.",
    )
    base_url: str | None = Field(
        None,
        description="The server-side LLM's endpoint; defaults to the provider's "
        "hosted API.",
    )
    mode: Literal["fallback", "always"] = Field(
        "fallback",
        description="`fallback`: the server-side LLM serves clients that cannot "
        "sample; `always`: it serves every request.",
    )
    provider_retries: int = Field(
        2,
        ge=0,
        description="Times the server-side LLM's SDK retries a request that failed "
        "on the way (no connection, HTTP 408, 409, 429 or 5xx), with backoff and "
        "within `MCP_SAMPLING_TIMEOUT`; 0 fails at once.",
    )
    budget_tokens: int | None = Field(
        None,
        ge=1,
        description="Tokens of the server-side LLM one user may spend a day (UTC), as "
        "the provider reports them, across every replica sharing `MCP_DB_URL`; "
        "unlimited by default. A client's own LLM is never counted.",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _complete_server_llm(self) -> GatewaySettings:
        if self.provider is None:
            stray = [
                f"MCP_SAMPLING_{name.upper()}"
                for name in ("model", "api_key", "base_url")
                if getattr(self, name) is not None
            ]
            if stray:
                raise _configuration_error(
                    f"{', '.join(stray)} configure a server-side LLM, but "
                    "MCP_SAMPLING_PROVIDER is not set (`openai` or `anthropic`)."
                )
            return self
        if not self.model:
            raise _configuration_error(
                f"MCP_SAMPLING_PROVIDER={self.provider} needs MCP_SAMPLING_MODEL, "
                "the model to use."
            )
        key_variable = PROVIDER_KEY_VARIABLES[self.provider]
        if self.api_key is None and os.environ.get(key_variable):
            self.api_key = SecretStr(os.environ[key_variable])
        if self.api_key is None and self.hosted:
            raise _configuration_error(
                f"MCP_SAMPLING_PROVIDER={self.provider} on its hosted API needs a key: "
                f"set MCP_SAMPLING_API_KEY or {key_variable} (a custom "
                "MCP_SAMPLING_BASE_URL, such as a local Ollama, may need none)."
            )
        return self

    @property
    def hosted(self) -> bool:
        """Whether the server-side LLM is a provider's hosted API."""
        return self.base_url is None or urlsplit(self.base_url).hostname in (
            HOSTED_ENDPOINTS
        )


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _configuration_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("configuration", message)


class ConfigurationError(ValueError):
    """Settings that cannot be used; the message names each variable and flag.

    >>> print(ConfigurationError("MCP_PORT (--port): too big"))
    invalid configuration:
      MCP_PORT (--port): too big
    """

    def __init__(self, *problems: str) -> None:
        self.problems = problems
        super().__init__("\n  ".join(["invalid configuration:", *problems]))

    @classmethod
    def of(cls, error: ValueError) -> ConfigurationError:
        """`error` as a configuration error (a pattern's data, the server-side LLM)."""
        return error if isinstance(error, ConfigurationError) else cls(str(error))


SettingsT = typing.TypeVar("SettingsT", bound=BaseSettings)


class LoadedSettings(dict[type[BaseSettings], BaseSettings]):
    """Every settings object of the server, by class."""

    def of(self, settings_class: type[SettingsT]) -> SettingsT:
        return typing.cast(SettingsT, self[settings_class])


def load_settings(
    classes: Iterable[type[BaseSettings]], given: Sequence[BaseSettings] = ()
) -> LoadedSettings:
    """Each class's settings: `given` ones as they are, the rest from the environment.

    Raises `ConfigurationError` listing every problem of every class, each with its
    variable and flag, and never a secret's value.
    """
    loaded = LoadedSettings({type(settings): settings for settings in given})
    problems: list[str] = []
    for settings_class in classes:
        if settings_class in loaded:
            continue
        try:
            loaded[settings_class] = settings_class()
        except ValidationError as error:
            problems += [_describe(settings_class, p) for p in error.errors()]
    if problems:
        raise ConfigurationError(*problems)
    return loaded


def _describe(settings_class: type[BaseSettings], problem: typing.Any) -> str:
    if not problem["loc"]:  # a rule across settings; its message names them
        return str(problem["msg"])
    field = str(problem["loc"][0])
    env = env_name(settings_class, field)
    if is_secret(settings_class.model_fields[field].annotation):
        return f"{env}: {problem['msg']}"  # no flag to name, and never the value
    return f"{env} ({flag_name(env)}): {problem['msg']} (got {problem['input']!r})"


def env_name(settings_class: type[BaseSettings], field: str) -> str:
    """The environment variable of a setting.

    >>> env_name(GatewaySettings, "timeout")
    'MCP_SAMPLING_TIMEOUT'
    """
    return f"{settings_class.model_config['env_prefix']}{field}".upper()


def flag_name(env: str) -> str:
    """The CLI flag of an environment variable.

    >>> flag_name("MCP_SAMPLING_TIMEOUT"), flag_name("SUMMARIZER_MAX_CHARS")
    ('--sampling-timeout', '--summarizer-max-chars')
    """
    return "--" + env.removeprefix("MCP_").lower().replace("_", "-")


def is_secret(annotation: object) -> bool:
    """Whether a setting holds a secret: environment only, never shown."""
    return SecretStr in (annotation, *typing.get_args(annotation))
