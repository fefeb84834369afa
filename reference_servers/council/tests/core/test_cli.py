"""The command line: flags, environment variables and clear configuration errors."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from council.cli import main
from council.core import ServerSettings
from council.core._settings import (
    env_name,
    flag_name,
    is_secret,
    load_settings,
)
from council.server import settings_classes

PROJECT = Path(__file__).parents[2]
README = PROJECT / "README.md"


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
    # The section's table, not the rows that other sections show as examples.
    section = README.read_text().split("\n## Configuration\n")[1]
    table = section.split("\n## ")[0]
    rows = {
        f"| `{env}` | {flag} | `{info.default}` | {info.description} |"
        for settings_class in settings_classes()
        for field, info in settings_class.model_fields.items()
        for env in [env_name(settings_class, field)]
        for flag in ["—" if is_secret(info.annotation) else f"`{flag_name(env)}`"]
    }
    missing = sorted(row for row in rows if row not in table)
    documented = re.findall(r"^\| `[A-Z][A-Z0-9_]+` \|.*\|$", table, re.MULTILINE)
    stale = sorted(row for row in documented if row not in rows)
    fix = "README.md's Configuration table is out of step with the settings classes"
    assert not missing, f"{fix}. Add (or correct) these rows:\n" + "\n".join(missing)
    assert not stale, f"{fix}. Remove (or correct) these rows:\n" + "\n".join(stale)


def test_readme_map_names_every_module_of_the_core() -> None:
    section = README.read_text().split("\n## Where things are\n")[1].split("\n## ")[0]
    core = PROJECT / "src" / "council" / "core"
    unnamed = sorted(
        module.name
        for module in core.glob("*.py")
        if not re.search(rf"^ +{re.escape(module.name)} ", section, re.MULTILINE)
    )
    assert not unnamed, f"README.md's 'Where things are' leaves out {unnamed}"


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


def client_snippets(language: str) -> list[str]:
    section = README.read_text().split("\n## Connect a client\n")[1].split("\n## ")[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def configured_servers() -> list[dict[str, Any]]:
    """Every server the README's client snippets configure, in one shape."""
    servers: list[dict[str, Any]] = []
    for block in client_snippets("json"):
        document = json.loads(block)
        entries = (
            document.get("servers") or document.get("mcpServers") or {"": document}
        )
        servers += [
            {"inputs": document.get("inputs", []), "env": {}, **entry}
            for entry in entries.values()
        ]
    for block in client_snippets("yaml"):
        document = yaml.safe_load(block)
        goose = document.get("extensions", {}).values()
        fast_agent = document.get("mcp", {}).get("servers", {}).values()
        servers += [
            {"command": entry.get("cmd", entry.get("command")), "args": entry["args"]}
            for entry in [*goose, *fast_agent]
        ]
    for block in client_snippets("bash"):
        words = shlex.split(block)
        assert words[:3] == ["claude", "mcp", "add"], block
        options, command = words[3 : words.index("--")], words[words.index("--") + 1 :]
        env = [value for flag, value in itertools.pairwise(options) if flag == "--env"]
        servers.append(
            {
                "command": command[0],
                "args": command[1:],
                "env": dict(pair.split("=", 1) for pair in env),
            }
        )
    return servers


def test_readme_client_snippets_start_this_server_with_settings_it_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = "council"
    extras = metadata(project).get_all("Provides-Extra") or []
    servers = configured_servers()
    stdio = [server for server in servers if "command" in server]
    assert len(stdio) >= 7, "a snippet per client, and the from-source form"
    for server in stdio:
        command = [server["command"], *server["args"]]
        env = {name: str(value) for name, value in server.get("env", {}).items()}
        extra = env.get("MCP_SAMPLING_PROVIDER")
        if command[0] == "uvx":
            wanted = [project] if extra is None else [f"{project}[{extra}]", project]
            assert command[1:] in ([project], ["--from", *wanted]), command
        else:
            assert command[:4] == ["uv", "run", "--directory", f"/path/to/{project}"]
            assert command[4:] in ([project], ["--extra", extra, project]), command
        assert extra is None or extra in extras
        for name in list(os.environ):
            if name.startswith("MCP_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        load_settings(settings_classes())  # raises, naming the variable, if refused


def test_readme_http_client_snippet_sends_the_token_it_asks_for() -> None:
    (server,) = [server for server in configured_servers() if "url" in server]
    inputs = {entry["id"]: entry for entry in server["inputs"]}
    assert server["url"] == f"http://127.0.0.1:{ServerSettings().port}/mcp"
    (token_input,) = re.findall(
        r"^Bearer \$\{input:(.+)\}$", server["headers"]["Authorization"]
    )
    assert inputs[token_input]["password"] is True
