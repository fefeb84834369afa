"""The server: its identity, its settings, and the pattern contract."""

from __future__ import annotations

from pathlib import Path

import fastmcp
import pytest
from fastmcp import Client

from weather import (
    __version__,
    patterns,
)
from weather.core import ConfigurationError
from weather.server import create_server


async def test_server_info_names_the_project_and_its_version() -> None:
    # A 2025-11-25 session: the modern era has no `initialize` to answer.
    async with Client(create_server(), mode="legacy") as client:
        info = client.initialize_result.server_info
    assert info.name == "weather"
    assert info.version == __version__


def test_fastmcp_run_does_not_advise_upgrading_fastmcp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastmcp.settings, "check_for_updates", "stable")
    create_server()
    assert fastmcp.settings.check_for_updates == "off"


def test_every_bad_setting_of_every_class_is_reported_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MCP_SAMPLING_TIMEOUT", "soon")
    monkeypatch.setenv("MCP_PORT", "0")
    with pytest.raises(ConfigurationError) as error:
        create_server()
    assert [problem.split(" ")[0] for problem in error.value.problems] == [
        "MCP_PORT",
        "MCP_SAMPLING_TIMEOUT",
    ]


def test_an_empty_token_is_refused_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HTTP_TOKEN", "")
    with pytest.raises(
        ConfigurationError, match="MCP_HTTP_TOKEN: Value error, is empty"
    ):
        create_server()


def test_a_pattern_that_breaks_the_contract_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "half_done.py").write_text(
        "def register(mcp, gateway, settings): ...\n"
    )
    monkeypatch.setattr(patterns, "__path__", [*patterns.__path__, str(tmp_path)])
    with pytest.raises(TypeError, match=r"half_done\.py .* does not define `Settings`"):
        create_server()


async def test_every_tool_and_its_results_are_described() -> None:
    """Docstrings become descriptions: the client's model reads them."""
    async with Client(create_server()) as client:
        tools = await client.list_tools()
    undescribed = [tool.name for tool in tools if not tool.description]
    for tool in tools:
        schema = tool.output_schema or {}
        if not schema.get("x-fastmcp-wrap-result"):  # a plain value is not a model
            undescribed += [
                f"{tool.name}: {where}" for where in models_without_description(schema)
            ]
    assert undescribed == []


def models_without_description(schema: object, where: str = "result") -> list[str]:
    """Where, in a JSON schema, an object with properties has no description."""
    if isinstance(schema, list):
        return [m for item in schema for m in models_without_description(item, where)]
    if not isinstance(schema, dict):
        return []
    missing = (
        [where] if "properties" in schema and not schema.get("description") else []
    )
    for key, value in schema.items():
        inner = (
            f"{where}.{key}" if key not in {"properties", "items", "anyOf"} else where
        )
        missing += models_without_description(value, inner)
    return missing
