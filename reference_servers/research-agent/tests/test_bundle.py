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

from research_agent.core import GatewaySettings
from research_agent.core._settings import (
    env_name,
    is_secret,
    load_settings,
)

PROJECT = Path(__file__).parents[1]
PLACEHOLDER = re.compile(r"^\$\{user_config\.(\w+)\}$")
SERVER_LLM = ["provider", "model", "api_key", "base_url"]


def manifest() -> dict[str, Any]:
    return json.loads((PROJECT / "manifest.json").read_text(encoding="utf-8"))


def claude_desktop_env(user_values: dict[str, str]) -> dict[str, str]:
    """The environment Claude Desktop gives the server, as mcpb's own code builds it.

    Defaults first, then what the user typed; a placeholder whose field has neither
    stays in the value as it is (`getMcpConfigForManifest` in @anthropic-ai/mcpb).
    """
    fields = manifest()["user_config"]
    values = {key: str(field["default"]) for key, field in fields.items()
              if "default" in field} | user_values  # fmt: skip
    env = manifest()["server"]["mcp_config"]["env"]
    return {
        name: values.get(match.group(1), value) if (match := PLACEHOLDER.match(value))
        else value
        for name, value in env.items()
    }  # fmt: skip


def test_the_bundle_names_this_package_and_version() -> None:
    installed = metadata("research-agent")
    document = manifest()
    assert document["name"] == installed["Name"]
    assert document["version"] == installed["Version"]
    assert document["description"] == installed["Summary"]


def test_the_form_offers_the_server_side_llm_settings_each_as_it_is_defined() -> None:
    fields = manifest()["user_config"]
    env = manifest()["server"]["mcp_config"]["env"]
    settings = {env_name(GatewaySettings, field): field for field in SERVER_LLM}
    assert sorted(env) == sorted(settings)
    used = []
    for name, value in env.items():
        match = PLACEHOLDER.match(value)
        assert match, f"{name} must take its value from user_config"
        used.append(match.group(1))
        field = fields[match.group(1)]
        info = GatewaySettings.model_fields[settings[name]]
        assert field.get("sensitive", False) == is_secret(info.annotation), name
        # mcpb leaves "${user_config.x}" in place for a blank field without a default.
        assert field.get("required") or "default" in field, name
    assert sorted(used) == sorted(fields), "a field the server never reads"


def test_the_form_runs_the_server_with_every_provider_sdk() -> None:
    config = manifest()["server"]["mcp_config"]
    provider = GatewaySettings.model_fields["provider"].annotation
    choices = [c for t in typing.get_args(provider) for c in typing.get_args(t)]
    assert config["command"] == "uv"
    assert config["args"][:3] == ["run", "--directory", "${__dirname}"]
    assert config["args"][-1] == "research-agent"
    extras = config["args"][4:-1:2]
    assert sorted(extras) == sorted(choices)
    installed = metadata("research-agent")
    assert set(extras) <= set(installed.get_all("Provides-Extra") or [])


@pytest.mark.parametrize(
    "user_values",
    [
        {"sampling_provider": "anthropic", "sampling_model": "claude-sonnet-4-5",
         "sampling_api_key": "sk-ant-test"},
        {"sampling_provider": "openai", "sampling_model": "llama3.2",
         "sampling_base_url": "http://localhost:11434/v1"},
    ],
    ids=["hosted-with-key", "local-without-key"],
)  # fmt: skip
def test_a_filled_in_form_is_a_configuration_the_server_accepts(
    user_values: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("MCP_")]:
        monkeypatch.delenv(name)
    for name, value in claude_desktop_env(user_values).items():
        monkeypatch.setenv(name, value)

    settings = load_settings([GatewaySettings])[GatewaySettings]

    assert settings.provider == user_values["sampling_provider"]
    assert settings.model == user_values["sampling_model"]
