"""Answers: bad ones are refused with a message that says what to type instead.

Answers go in with ``data=`` because copier validates those; defaults it fills in
itself are not validated.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
import yaml

from render import SAMPLE_ANSWERS, render

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

BAD_ANSWERS = [
    pytest.param(
        "project_name", "My Server", "Use lowercase letters, digits and single hyphens",
        id="project_name-space-and-capitals",
    ),
    pytest.param(
        "project_name", "-x", "Use lowercase letters, digits and single hyphens",
        id="project_name-leading-hyphen",
    ),
    pytest.param(
        "project_name", "a--b", "Use lowercase letters, digits and single hyphens",
        id="project_name-double-hyphen",
    ),
    pytest.param(
        "project_name", "mcp", '"mcp" is a package the server depends on',
        id="project_name-mcp",
    ),
    pytest.param(
        "project_name", "fastmcp", '"fastmcp" is a package the server depends on',
        id="project_name-fastmcp",
    ),
    pytest.param(
        "project_name", "pydantic-settings", 'try "pydantic-settings-server"',
        id="project_name-pydantic-settings",
    ),
    pytest.param(
        "package_name", "class", '"class" is a Python keyword',
        id="package_name-keyword",
    ),
    pytest.param(
        "package_name", "httpx", '"httpx" would hide a module the server imports',
        id="package_name-httpx",
    ),
    pytest.param(
        "package_name", "9lives", "not starting with a digit",
        id="package_name-leading-digit",
    ),
    pytest.param(
        "author_email", "ada.example.com", 'Give an address like "ada@example.com"',
        id="author_email-no-at",
    ),
    pytest.param(
        "description", "", "Give one non-empty line",
        id="description-empty",
    ),
    pytest.param(
        "description", "first\nsecond", "Give one non-empty line",
        id="description-two-lines",
    ),
    pytest.param(
        "description", "tab\tseparated", "Give one non-empty line",
        id="description-control-character",
    ),
    pytest.param(
        "github_owner", "", "The GitHub account that will own the repository is needed",
        id="github_owner-missing",
    ),
    pytest.param(
        "description", "x" * 101, "Keep it to 100 characters, the MCP Registry's limit",
        id="description-too-long",
    ),
    pytest.param(
        "github_owner", "ada_lovelace", "Give a GitHub account name",
        id="github_owner-underscore",
    ),
    pytest.param(
        "github_owner", "ada-", "Give a GitHub account name",
        id="github_owner-trailing-hyphen",
    ),
    pytest.param(
        "github_owner", "a" * 40, "at most 39",
        id="github_owner-too-long",
    ),
    pytest.param(
        "github_repo", "notes.git", 'without ".git"',
        id="github_repo-dot-git",
    ),
    pytest.param(
        "github_repo", "my notes", "Give a repository name",
        id="github_repo-space",
    ),
    pytest.param(
        "project_dir", "notes-helper", "Give an absolute path",
        id="project_dir-relative",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("question", "answer", "advice"), BAD_ANSWERS)
def test_validator_refuses_bad_answer_with_its_message(
    tmp_path: Path, question: str, answer: str, advice: str
) -> None:
    destination = tmp_path / "project"
    with pytest.raises(ValueError, match="Validation error") as refused:
        render(destination, {**SAMPLE_ANSWERS, question: answer})

    message = str(refused.value)
    assert f"question '{question}'" in message
    assert advice in message
    assert not destination.exists(), "nothing may be written for refused answers"


@pytest.mark.parametrize(
    ("question", "answer"),
    [("python_min", "3.9"), ("license", "GPL"), ("examples", ["no-such-pattern"])],
)
def test_answer_outside_the_choices_is_refused(
    tmp_path: Path, question: str, answer: object
) -> None:
    destination = tmp_path / "project"
    with pytest.raises(ValueError, match=f"Invalid choice for '{question}'"):
        render(destination, {**SAMPLE_ANSWERS, question: answer})
    assert not destination.exists()


def test_package_name_defaults_to_the_project_name_with_underscores(
    tmp_path: Path,
) -> None:
    render(tmp_path, {**SAMPLE_ANSWERS, "project_name": "acme-notes-2"})
    assert (tmp_path / "src" / "acme_notes_2").is_dir()


# A quote of each kind, a backslash, a `$`, markup and a letter beyond ASCII: what an
# escaper for another format (JSON's \u0027, a shell's `$`) would get wrong.
AWKWARD = {
    "description": 'Ada\'s "notes": a \\ b, $HOME, <b> & naïve',
    "author_name": 'Zoë "Z" O\'Brien \\ $USER',
}


def test_every_answer_reads_back_exactly_from_every_file_it_lands_in(
    tmp_path: Path,
) -> None:
    render(tmp_path, {**SAMPLE_ANSWERS, **AWKWARD})
    package = tmp_path / "src" / str(SAMPLE_ANSWERS["project_name"]).replace("-", "_")
    pyproject = tomllib.loads((tmp_path / "pyproject.toml").read_text())["project"]
    server_json = json.loads((tmp_path / "server.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    server_module = ast.parse((package / "server.py").read_text())
    (instructions,) = [
        ast.literal_eval(node.value)
        for node in server_module.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "INSTRUCTIONS"
    ]
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))

    description = AWKWARD["description"]
    assert pyproject["description"] == description
    assert pyproject["authors"] == [
        {"name": AWKWARD["author_name"], "email": SAMPLE_ANSWERS["author_email"]}
    ]
    assert server_json["description"] == description
    assert manifest["description"] == description
    assert manifest["author"]["name"] == AWKWARD["author_name"]
    assert instructions.startswith(description)
    assert docstring == description
    # The Dockerfile's label is read back by podman in `nox -s image`.
    assert "\\u0027" not in (tmp_path / "Dockerfile").read_text()


def test_project_dir_defaults_to_where_it_is_rendered_and_is_recorded(
    tmp_path: Path,
) -> None:
    """The docs' from-source commands hold the real path; `copier update` reuses it."""
    render(tmp_path / "project", SAMPLE_ANSWERS)
    answers = yaml.safe_load((tmp_path / "project" / ".copier-answers.yml").read_text())
    assert answers["project_dir"] == str((tmp_path / "project").resolve())
