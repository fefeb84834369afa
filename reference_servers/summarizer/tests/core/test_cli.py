"""The command line: flags, environment variables and clear configuration errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from summarizer.cli import main
from summarizer.core import ServerSettings
from summarizer.core._settings import (
    env_name,
    flag_name,
    is_secret,
)
from summarizer.server import settings_classes

PROJECT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main` writes flags into the environment; keep that out of other tests."""
    monkeypatch.setattr(os, "environ", os.environ.copy())


def test_help_lists_every_setting_with_its_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for settings_class in settings_classes():
        for field, info in settings_class.model_fields.items():
            env = env_name(settings_class, field)
            if is_secret(info.annotation):
                assert flag_name(env) not in help_text
            else:
                assert flag_name(env) in help_text
                assert env in help_text


def test_env_example_names_only_real_settings() -> None:
    known = {
        env_name(settings_class, field)
        for settings_class in settings_classes()
        for field in settings_class.model_fields
    }
    named = re.findall(
        r"^# ([A-Z][A-Z0-9_]+)=", (PROJECT / ".env.example").read_text(), re.MULTILINE
    )
    assert named
    assert sorted(set(named) - known) == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--sampling-timeout", "soon"], "MCP_SAMPLING_TIMEOUT (--sampling-timeout)"),
        (["--sampling-max-concurrency", "0"], "greater than or equal to 1"),
        (["--port", "70000"], "MCP_PORT (--port)"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name_and_no_traceback(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert expected in error
    assert "Traceback" not in error


def test_every_bad_setting_is_reported_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MCP_SAMPLING_TIMEOUT", "-1")
    monkeypatch.setenv("MCP_SAMPLING_MAX_TOKENS", "many")
    assert main([]) == 2
    error = capsys.readouterr().err
    assert "MCP_SAMPLING_TIMEOUT" in error
    assert "MCP_SAMPLING_MAX_TOKENS" in error


def test_choices_take_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    # The bad port stops the server before it serves; the rest was understood.
    assert main(["--log-level", "debug", "--transport", "HTTP", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert "MCP_PORT (--port)" in error
    assert "MCP_LOG_LEVEL" not in error
    assert "MCP_TRANSPORT" not in error
    understood = ServerSettings(port=8000)
    assert (understood.log_level, understood.transport) == ("DEBUG", "http")


def test_a_yes_no_setting_is_a_plain_flag(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--transport", "http", "--host", "0.0.0.0", "--http-allow-unauthenticated"]
    assert main(argv) == 2
    # Allowed without a token now; still not without MCP_HTTP_ALLOWED_HOSTS.
    assert "set MCP_HTTP_ALLOWED_HOSTS" in capsys.readouterr().err
    assert ServerSettings(host="127.0.0.1").http_allow_unauthenticated is True
    assert main(["--no-http-allow-unauthenticated", "--port", "0"]) == 2
    assert ServerSettings(host="::1", port=8000).http_allow_unauthenticated is False


def test_a_choice_outside_the_list_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--transport", "carrier-pigeon"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        (
            {},
            (
                "set MCP_HTTP_TOKEN or MCP_AUTH_ISSUER, or "
                "MCP_HTTP_ALLOW_UNAUTHENTICATED=true"
            ),
        ),
        ({"MCP_HTTP_TOKEN": "tok-123456"}, "set MCP_HTTP_ALLOWED_HOSTS"),
        ({"MCP_HTTP_ALLOW_UNAUTHENTICATED": "true"}, "set MCP_HTTP_ALLOWED_HOSTS"),
    ],
    ids=["no-token", "no-allowed-hosts", "unauthenticated-no-allowed-hosts"],
)
def test_http_beyond_loopback_needs_a_token_and_allowed_hosts(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    expected: str,
) -> None:
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert main(["--transport", "http", "--host", "0.0.0.0"]) == 2
    error = capsys.readouterr().err
    assert expected in error
    assert "tok-123456" not in error


@pytest.mark.parametrize(
    "settings",
    [
        {"transport": "http", "host": "127.0.0.1"},
        {"transport": "http", "host": "::1"},
        {"transport": "stdio", "host": "0.0.0.0"},
        {
            "transport": "http",
            "host": "0.0.0.0",
            "http_token": "tok",
            "http_allowed_hosts": "mcp.example.test",
        },
        {
            "transport": "http",
            "host": "0.0.0.0",
            "http_allow_unauthenticated": True,
            "http_allowed_hosts": "mcp.example.test",
        },
    ],
)
def test_loopback_or_a_token_or_an_explicit_opt_out_may_serve(settings: dict) -> None:
    assert ServerSettings(**settings).transport == settings["transport"]
