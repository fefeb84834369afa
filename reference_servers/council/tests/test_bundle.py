"""manifest.json, the Claude Desktop bundle: the server-side LLM as its settings form.

Claude Desktop cannot sample, so the bundle's `user_config` is how its users give the
tools a model. `nox -s package` runs `mcpb validate` and `mcpb pack` on it; these tests
check what mcpb cannot: that the form fills in real settings the server accepts.
"""

from __future__ import annotations

import json
import os
import re
import typing
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import pytest
from pydantic.fields import FieldInfo

from council.core import GatewaySettings
from council.core._settings import (
    env_name,
    is_secret,
    load_settings,
)
from council.server import settings_classes

PROJECT = Path(__file__).parents[1]
PROJECT_NAME = "council"
PLACEHOLDER = re.compile(r"^\$\{user_config\.(\w+)\}$")
# What Claude Desktop's users configure: the server-side LLM, nothing else.
SERVER_LLM = ["provider", "model", "api_key", "base_url", "mode"]
# How a description offers choices, e.g. "Type openai or anthropic. ..."
CHOICES = re.compile(r"^Type ((?:[\w-]+, )*[\w-]+ or [\w-]+)\. ")


def manifest() -> dict[str, Any]:
    return json.loads((PROJECT / "manifest.json").read_text(encoding="utf-8"))


def setting_of(env: str) -> FieldInfo:
    """The setting an environment variable sets, from every settings class."""
    settings = {
        env_name(settings_class, field): info
        for settings_class in settings_classes()
        for field, info in settings_class.model_fields.items()
    }
    assert env in settings, f"manifest.json sets {env}, which is no setting"
    return settings[env]


def form() -> dict[str, tuple[dict[str, Any], FieldInfo]]:
    """Each environment variable the bundle sets: its form field and its setting."""
    fields = manifest()["user_config"]
    pairs = {}
    for env, value in manifest()["server"]["mcp_config"]["env"].items():
        match = PLACEHOLDER.match(value)
        assert match, f"{env} must take its value from user_config"
        pairs[env] = (fields[match.group(1)], setting_of(env))
    return pairs


def literal_choices(annotation: object) -> list[str]:
    return sorted(
        str(choice)
        for t in (annotation, *typing.get_args(annotation))
        if typing.get_origin(t) is typing.Literal
        for choice in typing.get_args(t)
    )


def claude_desktop_env(user_values: dict[str, str]) -> dict[str, str] | None:
    """The environment Claude Desktop gives the server, as mcpb's own code builds it.

    None while a required field is blank (the server is not started); otherwise
    defaults first, then what the user typed; a placeholder whose field has neither
    stays in the value as it is (`getMcpConfigForManifest` in @anthropic-ai/mcpb).
    """
    fields = manifest()["user_config"]
    if any(field.get("required") and not user_values.get(key)
           for key, field in fields.items()):  # fmt: skip
        return None
    values = {key: str(field["default"]) for key, field in fields.items()
              if "default" in field} | user_values  # fmt: skip
    env = manifest()["server"]["mcp_config"]["env"]
    return {
        name: values.get(match.group(1), value) if (match := PLACEHOLDER.match(value))
        else value
        for name, value in env.items()
    }  # fmt: skip


def test_the_bundle_names_this_project_and_version() -> None:
    pyproject = (PROJECT / "pyproject.toml").read_text(encoding="utf-8")
    project = dict(re.findall(r'^(name|version) = "([^"]+)"$', pyproject, re.MULTILINE))
    document = manifest()
    assert document["name"] == project["name"] == PROJECT_NAME
    assert document["version"] == project["version"], "bump manifest.json's version"
    assert document["description"] == metadata(PROJECT_NAME)["Summary"]


def test_the_form_sets_exactly_the_server_side_llm_settings() -> None:
    env = manifest()["server"]["mcp_config"]["env"]
    expected = [env_name(GatewaySettings, field) for field in SERVER_LLM]
    assert sorted(env) == sorted(expected)
    used = [PLACEHOLDER.match(value) for value in env.values()]
    fields = manifest()["user_config"]
    assert sorted(m.group(1) for m in used if m) == sorted(fields), (
        "a user_config field the server never reads"
    )


def test_only_the_secret_settings_are_sensitive() -> None:
    for env, (field, info) in form().items():
        assert field.get("sensitive", False) == is_secret(info.annotation), env
    api_key, _ = form()[env_name(GatewaySettings, "api_key")]
    assert api_key["sensitive"] is True


def test_the_choices_offered_are_the_settings_own() -> None:
    for env, (field, info) in form().items():
        offered = CHOICES.match(field["description"])
        choices = sorted(re.split(r", | or ", offered.group(1))) if offered else []
        assert choices == literal_choices(info.annotation), env
        if choices and field.get("default"):
            assert field["default"] in choices, env


def test_a_blank_field_reaches_the_server_as_its_default() -> None:
    for env, (field, info) in form().items():
        if field.get("required"):
            assert "default" not in field, f"{env}: required, so typed, not defaulted"
            continue
        # mcpb leaves "${user_config.x}" in place for a blank field without a default;
        # "" is what the server reads as unset.
        assert "default" in field, env
        default = "" if info.default is None else str(info.default)
        assert field["default"] == default, env


def test_the_bundle_runs_the_server_with_every_provider_sdk() -> None:
    config = manifest()["server"]["mcp_config"]
    provider = GatewaySettings.model_fields["provider"].annotation
    args = config["args"]
    assert config["command"] == "uv"
    assert args[:3] == ["run", "--directory", "${__dirname}"]
    assert "--no-dev" in args
    assert args[-1] == PROJECT_NAME
    extras = [args[i + 1] for i, arg in enumerate(args) if arg == "--extra"]
    assert sorted(extras) == literal_choices(provider)
    installed = metadata(PROJECT_NAME)
    assert set(extras) <= set(installed.get_all("Provides-Extra") or [])


@pytest.mark.parametrize(
    "user_values",
    [
        {"sampling_provider": "anthropic", "sampling_model": "claude-sonnet-4-5",
         "sampling_api_key": "sk-ant-test"},
        {"sampling_provider": "openai", "sampling_model": "llama3.2",
         "sampling_base_url": "http://localhost:11434/v1", "sampling_mode": "always"},
        {"sampling_provider": "openai", "sampling_model": "gpt-4.1-mini",
         "sampling_api_key": "sk-test", "sampling_base_url": "",
         "sampling_mode": ""},
    ],
    ids=["hosted-with-key", "local-without-key", "fields-cleared"],
)  # fmt: skip
def test_a_filled_in_form_is_a_configuration_the_server_accepts(
    user_values: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = claude_desktop_env(user_values)
    assert environment is not None
    for name in [name for name in os.environ if name.startswith("MCP_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = load_settings(settings_classes())[GatewaySettings]

    assert isinstance(settings, GatewaySettings)
    assert settings.provider == user_values["sampling_provider"]
    assert settings.model == user_values["sampling_model"]
    assert settings.mode == (user_values.get("sampling_mode") or "fallback")


def test_a_form_without_provider_or_model_starts_nothing() -> None:
    assert claude_desktop_env({"sampling_provider": "openai"}) is None
    assert claude_desktop_env({"sampling_model": "gpt-4.1-mini"}) is None
