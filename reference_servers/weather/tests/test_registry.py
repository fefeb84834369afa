"""server.json, the MCP Registry's entry: valid, complete, and in step with the project.

The schema is the Registry's own, kept in tests/fixtures/ (see its README there), so
this runs offline; the Registry validates the same file again when the release
workflow publishes it.
"""

from __future__ import annotations

import json
import typing
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from pydantic import SecretStr

from weather.core._settings import env_name, is_secret
from weather.server import settings_classes

PROJECT = Path(__file__).parents[1]
SCHEMA = json.loads((PROJECT / "tests/fixtures/server.schema.json").read_text())


def server_json() -> dict[str, Any]:
    return json.loads((PROJECT / "server.json").read_text(encoding="utf-8"))


def project_metadata() -> dict[str, Any]:
    """The installed distribution's metadata, built from pyproject.toml."""
    installed = metadata("weather")
    urls = dict(url.split(", ", 1) for url in installed.get_all("Project-URL") or [])
    return {
        "name": installed["Name"],
        "version": installed["Version"],
        "description": installed["Summary"],
        "repository": urls["Repository"],
    }


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = Draft7Validator(SCHEMA, format_checker=FormatChecker())
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '/'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_server_json_is_valid_against_the_registry_schema() -> None:
    assert schema_errors(server_json()) == []


def test_the_schema_check_catches_what_the_registry_refuses() -> None:
    """Control for the test above: the same check reports the Registry's rules."""
    too_long = {**server_json(), "description": "x" * 101}
    no_name = {key: value for key, value in server_json().items() if key != "name"}

    assert any("is too long" in error for error in schema_errors(too_long))
    assert any("'name' is a required property" in e for e in schema_errors(no_name))


def expected_variable(settings_class: type[Any], field: str) -> dict[str, Any]:
    """The Registry entry a setting needs: what a client shows the user."""
    info = settings_class.model_fields[field]
    types = [t for t in (info.annotation, *typing.get_args(info.annotation)) if t]
    entry: dict[str, Any] = {
        "name": env_name(settings_class, field),
        "description": info.description,
    }
    if bool in types:
        entry["format"] = "boolean"
    elif {int, float} & set(types):
        entry["format"] = "number"
    elif Path in types:
        entry["format"] = "filepath"
    if choices := [
        str(choice)
        for t in types
        if typing.get_origin(t) is typing.Literal
        for choice in typing.get_args(t)
    ]:
        entry["choices"] = choices
    if info.default is not None and not isinstance(info.default, SecretStr):
        default = info.default
        entry["default"] = str(default).lower() if bool in types else str(default)
    if is_secret(info.annotation):
        entry["isSecret"] = True
    return entry


def declaration_problems(declared: list[dict[str, Any]]) -> list[str]:
    """How `declared` (server.json's environmentVariables) differs from what the
    settings classes define, one line per variable, in any order."""
    expected = {
        entry["name"]: entry
        for entry in (
            expected_variable(settings_class, field)
            for settings_class in settings_classes()
            for field in settings_class.model_fields
        )
    }
    names = [entry.get("name") for entry in declared]
    by_name = {entry.get("name"): entry for entry in declared}
    return sorted(
        [
            *(
                f"{name}: declared twice"
                for name in set(names)
                if names.count(name) > 1
            ),
            *(
                f"{name}: missing; add {json.dumps(expected[name])}"
                for name in expected.keys() - by_name.keys()
            ),
            *(
                f"{name}: not a setting of this server; remove it"
                for name in by_name.keys() - expected.keys()
            ),
            *(
                f"{name}: differs; make it {json.dumps(expected[name])}"
                for name in expected.keys() & by_name.keys()
                if by_name[name] != expected[name]
            ),
        ]
    )


def test_server_json_declares_every_setting_as_the_settings_define_it() -> None:
    (package,) = server_json()["packages"]
    problems = declaration_problems(package.get("environmentVariables", []))
    assert not problems, "server.json's environmentVariables (in any order):\n" + (
        "\n".join(problems)
    )


def test_the_settings_check_ignores_order_and_names_each_difference() -> None:
    """Control for the test above: a reordered list passes; each change is one line
    naming its variable, whatever else the list holds."""
    (package,) = server_json()["packages"]
    declared = package["environmentVariables"]
    assert declaration_problems(declared[::-1]) == []
    first, second, *rest = declared
    changed = [{**first, "description": "Something else."}, *rest]
    assert declaration_problems(changed) == sorted(
        [
            f"{first['name']}: differs; make it {json.dumps(first)}",
            f"{second['name']}: missing; add {json.dumps(second)}",
        ]
    )
    stray = [*declared, {"name": "MCP_NO_SUCH_SETTING"}, first]
    assert declaration_problems(stray) == sorted(
        [
            f"{first['name']}: declared twice",
            "MCP_NO_SUCH_SETTING: not a setting of this server; remove it",
        ]
    )


def test_server_json_names_this_package_and_version() -> None:
    project = project_metadata()
    document = server_json()
    (package,) = document["packages"]
    assert document["version"] == project["version"]
    assert package["version"] == project["version"]
    assert package["identifier"] == project["name"]
    assert (package["registryType"], package["runtimeHint"]) == ("pypi", "uvx")
    assert package["transport"] == {"type": "stdio"}
    assert document["description"] == project["description"]
    assert document["repository"]["url"] == project["repository"]


def test_readme_carries_the_mcp_name_pypi_verification_needs() -> None:
    # Not a check of the README's prose: a rule of the MCP Registry, which publishes
    # server.json only if the README of the PyPI package names the server in this line.
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    assert f"<!-- mcp-name: {server_json()['name']} -->" in readme
