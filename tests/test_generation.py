"""Generated projects pass their own checks (ruff, ruff format, pytest) and CI lint.

The matrix of ``examples`` selections comes from copier.yml (see conftest.py):
``--combos=smoke`` (default) or ``--combos=powerset`` (``nox -s powerset``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from project_check import ProjectCheckError, check_project
from render import SAMPLE_ANSWERS, example_choices, question_choices, render


def test_generated_project_passes_its_own_checks(
    tmp_path: Path, example_combo: tuple[str, ...]
) -> None:
    project = tmp_path / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": list(example_combo)})

    assert_fully_rendered(project)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["examples"] == list(example_combo), "copier update needs them"
    assert_passes_its_own_checks(project)


def test_generated_project_passes_on_its_minimum_python(tmp_path: Path) -> None:
    python_min = min(
        question_choices("python_min"),
        key=lambda version: tuple(map(int, version.split("."))),
    )
    interpreter = find_python(python_min)
    project = tmp_path / "project"
    render(
        project,
        {**SAMPLE_ANSWERS, "python_min": python_min, "examples": example_choices()},
    )
    assert_passes_its_own_checks(project, python=interpreter)


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
    # Installed by the nox session next to the interpreter running the tests.
    scripts = os.pathsep.join(
        [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    )
    actionlint = shutil.which("actionlint", path=scripts) or shutil.which("actionlint")
    if actionlint is None:
        pytest.fail("actionlint not found: run the tests with `nox -s tests`")
    return subprocess.run(
        [actionlint, "-no-color", *map(str, workflows)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def assert_passes_its_own_checks(project: Path, python: str | None = None) -> None:
    try:
        check_project(project, python)
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


def find_python(version: str) -> str:
    """The path of an installed Python ``version``, or fail the test saying why.

    Not a skip: the minimum Python is a promise the template makes, so a machine
    that cannot test it must say so loudly.
    """
    found = subprocess.run(
        ["uv", "python", "find", "--no-project", version],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail(
            f"Python {version} not found, so the generated project cannot be tested "
            f"on its minimum Python. Put a python{version} on PATH (.ci/run adds "
            f"every pyenv version) or `uv python install {version}`.\n{found.stderr}"
        )
    return found.stdout.strip()
