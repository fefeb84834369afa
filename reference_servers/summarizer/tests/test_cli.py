"""The command line: flags, environment variables and clear configuration errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from summarizer.cli import (
    env_name,
    flag_name,
    is_secret,
    main,
    settings_classes,
)
from summarizer.config import ServerSettings

README = Path(__file__).parents[1] / "README.md"


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


def test_readme_documents_every_setting_with_its_flag_and_default() -> None:
    rows = {
        match[1]: (match[2], match[3])
        for match in re.finditer(
            r"^\| `(\w+)` \| (`--[\w-]+`|—) \| `([^`]*)` \|",
            README.read_text(),
            re.MULTILINE,
        )
    }
    documented = {
        env_name(settings_class, field): (
            "—"
            if is_secret(info.annotation)
            else f"`{flag_name(env_name(settings_class, field))}`",
            str(info.default),
        )
        for settings_class in settings_classes()
        for field, info in settings_class.model_fields.items()
    }
    assert rows == documented


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
        ({}, "set MCP_HTTP_TOKEN, or MCP_HTTP_ALLOW_UNAUTHENTICATED=true"),
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
