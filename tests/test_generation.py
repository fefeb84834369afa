"""Generated projects pass their own checks (ruff, ruff format, mypy, pytest) and CI lint.

The project with every pattern runs its whole suite, on the minimum Python: here ruff,
mypy and the tests that start the server as a process; its pages' commands, as a
reader pastes them, run the in-process tests (its README's fast loop, in
test_docs_commands.py). The machinery's tests (``tests/core``, the same in every
project) run there and nowhere else in the default sessions. An empty project, with
the docs' "Add a tool" example (docs/add-a-tool.md) copied in as a newcomer would,
runs its own tests only: the example's, and those of the files it ships. Each
pattern alone is a reference server (``nox -s reference``: its pattern's tests), and
``nox -s powerset`` checks every selection, whole suites (``check_powerset.py``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from project_check import ProjectCheckError, check_project
from render import SAMPLE_ANSWERS, every_pattern_answers, example_choices, render
from session_tools import find_python, session_tool


def test_the_docs_example_tool_works_as_copied_into_an_empty_project(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": []})
    assert_fully_rendered(project)

    added = add_the_docs_example(project)

    package = str(SAMPLE_ANSWERS["project_name"]).replace("-", "_")
    assert added == [
        Path(f"src/{package}/patterns/sentiment.py"),
        Path("tests/patterns/test_sentiment.py"),
    ]
    # The machinery's tests, and those that start a process, run in the project below.
    assert_passes_its_own_checks(project, tests="not process", machinery=False)


def test_a_project_with_every_pattern_and_a_long_name_passes_on_its_minimum_python(
    tmp_path: Path,
) -> None:
    answers = every_pattern_answers()
    project = tmp_path / str(answers["project_name"])
    render(project, answers)

    assert_fully_rendered(project)
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["examples"] == answers["examples"], "copier update needs them"
    # The in-process tests run in the same project's pages, as the README's fast loop
    # (test_docs_commands.py), on the other worker.
    python = find_python(str(answers["python_min"]))
    assert_passes_its_own_checks(project, python=python, tests="process")


def add_the_docs_example(project: Path) -> list[Path]:
    """Do what the generated docs/add-a-tool.md says, as a newcomer would.

    Each Python block marked `<!-- file: PATH -->` is written to PATH, and each JSON
    block marked `<!-- entry: server.json -->` becomes an environment variable of
    server.json's package. (The configuration page needs nothing: the docs build makes
    it from the settings classes.) Returns the files written.
    """
    page = (project / "docs" / "add-a-tool.md").read_text(encoding="utf-8")
    files = re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", page, re.DOTALL)
    entries = re.findall(
        r"<!-- entry: server.json -->\n```json\n(.*?)\n```", page, re.DOTALL
    )
    assert files, "docs/add-a-tool.md shows no example files"
    assert entries, "docs/add-a-tool.md shows no server.json entry for the setting"
    for path, code in files:
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(code, encoding="utf-8")
    server_json = json.loads((project / "server.json").read_text(encoding="utf-8"))
    for entry in entries:
        server_json["packages"][0]["environmentVariables"].append(json.loads(entry))
    (project / "server.json").write_text(json.dumps(server_json, indent=2) + "\n")
    return [Path(path) for path, _code in files]


def test_generated_workflows_pass_actionlint(tmp_path: Path) -> None:
    project = tmp_path / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": example_choices()})
    workflows = sorted((project / ".github" / "workflows").glob("*.y*ml"))
    assert project / ".github" / "workflows" / "ci.yml" in workflows

    linted = run_actionlint(project, workflows)

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """Control for the test above: the same invocation does report errors."""
    workflow = tmp_path / ".github" / "workflows" / "broken.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(
        "on: push\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ matrix.undefined }}\n"
    )

    linted = run_actionlint(tmp_path, [workflow])

    assert linted.returncode == 1
    assert "undefined" in linted.stdout


def run_actionlint(
    project: Path, workflows: list[Path]
) -> subprocess.CompletedProcess[str]:
    actionlint = session_tool("actionlint")
    return subprocess.run(
        [actionlint, "-no-color", *map(str, workflows)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def assert_passes_its_own_checks(
    project: Path,
    python: str | None = None,
    *,
    tests: str | None = None,
    machinery: bool = True,
) -> None:
    try:
        check_project(project, python, tests=tests, machinery=machinery)
    except ProjectCheckError as error:
        # The failing tool's own output is in the captured stdout above.
        pytest.fail(str(error), pytrace=False)


def assert_fully_rendered(project: Path) -> None:
    """No template syntax survives in file names (a missing .jinja or a typo)."""
    leftovers = [
        path.relative_to(project)
        for path in project.rglob("*")
        if path.suffix == ".jinja" or "{{" in path.name or "{%" in path.name
    ]
    assert not leftovers
