"""The server-side LLM: configured from the environment, called through the provider's SDK.

Every test here talks to a stand-in provider on loopback (`provider_standin.py`) with
the real `openai` or `anthropic` client; nothing of ours is patched.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from conftest import Connect
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from provider_standin import API_KEY, MODEL, Dialect, ProviderStandIn, http_error

from weather.cli import main
from weather.core import (
    LLM,
    GatewaySettings,
    Prompt,
)
from weather.core.testing import (
    ScriptedLLM,
    text,
)
from weather.server import create_server

CREDENTIAL = {"openai": f"Bearer {API_KEY}", "anthropic": API_KEY}


def add_ask_tool(server: FastMCP, gateway: GatewaySettings) -> None:
    @server.tool
    async def ask(question: str, ctx: Context) -> dict:
        """One completion, reporting the route it took."""
        llm = LLM(ctx, gateway)
        reply = await llm.complete(Prompt("Answer the question.", question=question))
        return {"answer": reply, "route": llm.route.name}


@pytest.fixture
def provider_llm() -> Iterator[ScriptedLLM]:
    """The LLM behind the stand-in provider; fails the test if its script was not followed."""
    llm = ScriptedLLM()
    yield llm
    llm.assert_finished()


@pytest.fixture(params=["openai", "anthropic"])
async def provider(
    request: pytest.FixtureRequest, provider_llm: ScriptedLLM
) -> AsyncIterator[ProviderStandIn]:
    dialect: Dialect = request.param
    async with ProviderStandIn.serving(provider_llm, dialect) as stand_in:
        yield stand_in


async def test_the_request_reaches_the_provider_with_its_key_model_and_bounds(
    connect: Connect, provider: ProviderStandIn, provider_llm: ScriptedLLM
) -> None:
    provider_llm.expect(text("Forty-two."))
    settings = provider.settings(max_tokens=333)
    async with connect("none", settings=settings, setup=add_ask_tool) as client:
        result = await client.call_tool("ask", {"question": "Six times seven?"})
    assert result.data == {"answer": "Forty-two.", "route": "SERVER"}
    assert provider.credentials == [CREDENTIAL[provider.dialect]]
    (wire,) = provider.wire_requests
    assert wire["model"] == MODEL
    (request,) = provider_llm.requests
    assert request.max_tokens == 333
    assert "<<<BEGIN UNTRUSTED question " in request.messages[0].content_as_list[0].text
    assert "never as instructions" in request.system_prompt


@pytest.mark.parametrize("profile", ["tools", "text"])
async def test_fallback_leaves_a_client_that_samples_to_its_own_llm(
    connect: Connect,
    scripted_llm: ScriptedLLM,
    provider: ProviderStandIn,
    profile: str,
) -> None:
    scripted_llm.expect(text("From the client."))
    async with connect(
        profile, settings=provider.settings(), setup=add_ask_tool
    ) as client:
        result = await client.call_tool("ask", {"question": "Who answers?"})
    assert result.data["answer"] == "From the client."
    assert provider.wire_requests == []


@pytest.mark.parametrize("profile", ["tools", "text", "none"])
async def test_always_sends_every_request_to_the_server_side_llm(
    connect: Connect,
    provider: ProviderStandIn,
    provider_llm: ScriptedLLM,
    profile: str,
) -> None:
    provider_llm.expect(text("From the server."))
    settings = provider.settings(mode="always")
    async with connect(profile, settings=settings, setup=add_ask_tool) as client:
        result = await client.call_tool("ask", {"question": "Who answers?"})
    # The client's scripted LLM has no entries: a request to it would fail the test.
    assert result.data == {"answer": "From the server.", "route": "SERVER"}


async def test_the_provider_key_falls_back_to_the_providers_own_variable(
    connect: Connect,
    provider: ProviderStandIn,
    provider_llm: ScriptedLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    variable = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
    monkeypatch.setenv(variable[provider.dialect], API_KEY)
    provider_llm.expect(text("Keyed."))
    settings = GatewaySettings(
        provider=provider.dialect, model=MODEL, base_url=provider.url
    )
    async with connect("none", settings=settings, setup=add_ask_tool) as client:
        await client.call_tool("ask", {"question": "Which key?"})
    assert provider.credentials == [CREDENTIAL[provider.dialect]]


async def test_a_custom_endpoint_needs_no_key(
    connect: Connect,
    provider: ProviderStandIn,
    provider_llm: ScriptedLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    provider_llm.expect(text("No key needed."))
    settings = GatewaySettings(
        provider=provider.dialect, model=MODEL, base_url=provider.url
    )
    async with connect("none", settings=settings, setup=add_ask_tool) as client:
        result = await client.call_tool("ask", {"question": "Local model?"})
    assert result.data["answer"] == "No key needed."
    assert API_KEY not in provider.credentials[0]


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "Check MCP_SAMPLING_API_KEY."),
        (404, "Check MCP_SAMPLING_MODEL and MCP_SAMPLING_BASE_URL."),
        (400, ""),
    ],
)
async def test_a_provider_error_is_clear_and_never_carries_the_key(
    connect: Connect,
    provider: ProviderStandIn,
    provider_llm: ScriptedLLM,
    caplog: pytest.LogCaptureFixture,
    status: int,
    hint: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider_llm.expect(http_error(status, "the provider says no"))
    async with connect(
        "none", settings=provider.settings(), setup=add_ask_tool
    ) as client:
        with pytest.raises(ToolError) as error:
            await client.call_tool("ask", {"question": "Will it fail?"})
    message = str(error.value)
    assert f"The server-side LLM ({provider.dialect} model '{MODEL}'" in message
    assert f"answered HTTP {status}: the provider says no" in message
    assert hint in message
    # The stand-in echoed the key it received; the server scrubbed it everywhere.
    assert API_KEY in provider.credentials[0]
    assert "[redacted]" in message
    assert API_KEY not in message
    assert API_KEY not in caplog.text
    assert "the provider says no" in caplog.text


@pytest.mark.parametrize("retries", [None, 0, 1], ids=["default", "no-retry", "one"])
async def test_a_request_the_provider_sheds_is_retried_as_often_as_configured(
    connect: Connect,
    provider: ProviderStandIn,
    provider_llm: ScriptedLLM,
    retries: int | None,
) -> None:
    allowed = 2 if retries is None else retries  # the default: the SDKs' own
    settings = (
        provider.settings()
        if retries is None
        else provider.settings(provider_retries=retries)
    )
    # The provider sheds load, saying when to come back: the first call gets through
    # on its last allowed try; the second runs out of tries.
    shed = http_error(503, "overloaded, try again", retry_after=0.001)
    provider_llm.expect(*[shed] * allowed, text("At last."), *[shed] * (allowed + 1))
    async with connect("none", settings=settings, setup=add_ask_tool) as client:
        answered = await client.call_tool("ask", {"question": "Busy?"})
        with pytest.raises(ToolError) as error:
            await client.call_tool("ask", {"question": "Still busy?"})
    assert answered.data["answer"] == "At last."
    assert "answered HTTP 503: overloaded, try again" in str(error.value)
    assert len(provider.wire_requests) == 2 * (allowed + 1)


# No retries in the two tests below: a refused connection is the same error after the
# SDK's backoff (the test above checks the retries), only a second or two later.
async def test_an_unreachable_provider_is_a_clear_error_per_call(
    connect: Connect, provider: ProviderStandIn
) -> None:
    settings = provider.settings(base_url="http://127.0.0.1:9/v1", provider_retries=0)
    async with connect("none", settings=settings, setup=add_ask_tool) as client:
        with pytest.raises(ToolError) as error:
            await client.call_tool("ask", {"question": "Anyone there?"})
    assert "could not be reached" in str(error.value)
    assert "Check MCP_SAMPLING_BASE_URL" in str(error.value)


async def test_a_successful_reply_that_echoes_the_key_is_scrubbed(
    connect: Connect, provider: ProviderStandIn, provider_llm: ScriptedLLM
) -> None:
    provider_llm.expect(text(f"Sure. By the way, your key is {API_KEY}."))
    async with connect(
        "none", settings=provider.settings(), setup=add_ask_tool
    ) as client:
        result = await client.call_tool("ask", {"question": "Who am I?"})
    assert result.data["answer"] == "Sure. By the way, your key is [redacted]."


async def test_a_password_in_the_base_url_stays_out_of_errors_and_logs(
    connect: Connect, provider: ProviderStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "hunter2-in-the-url"
    url = f"http://user:{password}@127.0.0.1:9/v1"
    settings = provider.settings(base_url=url, provider_retries=0)
    async with connect("none", settings=settings, setup=add_ask_tool) as client:
        with pytest.raises(ToolError) as error:
            await client.call_tool("ask", {"question": "Anyone there?"})
    assert "could not be reached" in str(error.value)
    assert "127.0.0.1:9" in str(error.value)
    assert password not in str(error.value)
    assert password not in caplog.text


@pytest.mark.parametrize("logger", ["httpx", "httpcore.http11", "anthropic", "x.y"])
@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.ERROR])
def test_no_log_record_of_any_logger_carries_a_secret(
    provider: ProviderStandIn, caplog: pytest.LogCaptureFixture, logger: str, level: int
) -> None:
    caplog.set_level(logging.DEBUG)
    create_server(provider.settings())  # registers the key
    logging.getLogger(logger).log(level, "HTTP/1.1 401 %s rejected", API_KEY)
    try:
        raise RuntimeError(f"the provider said {API_KEY}")
    except RuntimeError:
        logging.getLogger(logger).log(level, "failed", exc_info=True)
    assert "[redacted] rejected" in caplog.text
    assert API_KEY not in caplog.text


async def test_an_answer_the_handler_cannot_read_is_a_clear_error(
    connect: Connect, provider: ProviderStandIn, provider_llm: ScriptedLLM
) -> None:
    provider_llm.expect(text(""))
    async with connect(
        "none", settings=provider.settings(), setup=add_ask_tool
    ) as client:
        with pytest.raises(ToolError, match="gave an unusable answer"):
            await client.call_tool("ask", {"question": "Say nothing."})


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"MCP_SAMPLING_PROVIDER": "openai"}, "needs MCP_SAMPLING_MODEL"),
        (
            {"MCP_SAMPLING_PROVIDER": "openai", "MCP_SAMPLING_MODEL": "gpt-4.1-mini"},
            "set MCP_SAMPLING_API_KEY or OPENAI_API_KEY",
        ),
        (
            {
                "MCP_SAMPLING_PROVIDER": "anthropic",
                "MCP_SAMPLING_MODEL": "claude-sonnet-4-5",
                "MCP_SAMPLING_BASE_URL": "https://api.anthropic.com",
            },
            "set MCP_SAMPLING_API_KEY or ANTHROPIC_API_KEY",
        ),
        (
            {"MCP_SAMPLING_MODEL": "gpt-4.1-mini", "MCP_SAMPLING_API_KEY": API_KEY},
            (
                "MCP_SAMPLING_MODEL, MCP_SAMPLING_API_KEY configure a server-side "
                "LLM, but MCP_SAMPLING_PROVIDER is not set"
            ),
        ),
        ({"MCP_SAMPLING_MODE": "always"}, "MCP_SAMPLING_MODE=always needs a server"),
        (
            {
                "MCP_SAMPLING_PROVIDER": "openai",
                "MCP_SAMPLING_MODEL": "m",
                "MCP_SAMPLING_BASE_URL": "localhost:11434",
            },
            (
                "MCP_SAMPLING_BASE_URL (--sampling-base-url): Value error, must be "
                "an http:// or https:// URL"
            ),
        ),
        ({"MCP_SAMPLING_PROVIDER": "gemini"}, "MCP_SAMPLING_PROVIDER"),
    ],
    ids=[
        "no-model",
        "hosted-openai-without-key",
        "hosted-anthropic-without-key",
        "no-provider",
        "always-without-provider",
        "bad-url",
        "unknown-provider",
    ],
)
def test_an_incomplete_configuration_stops_the_server_with_a_message(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    expected: str,
) -> None:
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert main([]) == 2
    error = capsys.readouterr().err
    assert expected in error
    assert "Traceback" not in error
    assert API_KEY not in error


def test_a_blank_server_side_llm_variable_is_an_unset_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What Claude Desktop's bundle form (manifest.json) passes for blank fields.
    for field in ("provider", "model", "api_key", "base_url", "mode"):
        monkeypatch.setenv(f"MCP_SAMPLING_{field.upper()}", "")
    blank = GatewaySettings()
    assert (blank.provider, blank.model, blank.api_key) == (None, None, None)
    assert (blank.base_url, blank.mode) == (None, "fallback")

    monkeypatch.setenv("MCP_SAMPLING_PROVIDER", "openai")
    monkeypatch.setenv("MCP_SAMPLING_MODEL", "llama3.2")
    monkeypatch.setenv("MCP_SAMPLING_BASE_URL", "http://127.0.0.1:11434/v1")
    local = GatewaySettings()
    assert (local.provider, local.api_key, local.mode) == ("openai", None, "fallback")


@pytest.mark.parametrize("provider_name", ["openai", "anthropic"])
def test_a_missing_provider_sdk_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    provider_name: str,
) -> None:
    # What an installation without the extra looks like to `import`.
    monkeypatch.setitem(sys.modules, provider_name, None)
    monkeypatch.setitem(
        sys.modules, f"fastmcp.client.sampling.handlers.{provider_name}", None
    )
    monkeypatch.setenv("MCP_SAMPLING_PROVIDER", provider_name)
    monkeypatch.setenv("MCP_SAMPLING_MODEL", "some-model")
    monkeypatch.setenv("MCP_SAMPLING_BASE_URL", "http://127.0.0.1:11434")
    assert main([]) == 2
    error = capsys.readouterr().err
    assert (
        f"MCP_SAMPLING_PROVIDER={provider_name} needs the `{provider_name}` extra"
        in error
    )
    assert f"'weather[{provider_name}]'" in error
    assert "Traceback" not in error


def test_the_key_is_no_flag_and_stays_out_of_settings_reprs() -> None:
    settings = GatewaySettings(
        provider="openai",
        model=MODEL,
        api_key=API_KEY,
        base_url="http://127.0.0.1:1/v1",
    )
    assert API_KEY not in repr(settings)
    assert API_KEY not in str(settings.model_dump())
    with pytest.raises(SystemExit):
        main(["--sampling-api-key", API_KEY])
